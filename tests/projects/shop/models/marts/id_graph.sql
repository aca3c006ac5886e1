{{ config(materialized='id_stitcher') }}

{{ dbt_studio.id_edges(
    sources=[
        {'relation': ref('stg_customers'), 'ids': ['customer_id', 'email'], 'timestamp': 'signed_up_at'},
        {'relation': ref('stg_sessions'), 'ids': ['anonymous_id', 'customer_id'], 'timestamp': 'ts'},
        {'relation': ref('stg_orders'), 'ids': ['email'], 'timestamp': 'ordered_at'},
    ]
) }}
