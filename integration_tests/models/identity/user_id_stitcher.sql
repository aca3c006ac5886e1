{#- anonymous_id -> user_id -> email stitching, as in the RudderStack Profiles guide, with junk ids screened. -#}
{{ config(materialized='id_stitcher') }}

{{ dbt_studio.id_edges(
    sources=[
        {'relation': ref('stg_identifies'), 'ids': ['anonymous_id', 'user_id', 'email'], 'timestamp': 'timestamp'},
        {'relation': ref('stg_tracks'), 'ids': ['anonymous_id', 'user_id'], 'timestamp': 'timestamp'},
        {'relation': ref('stg_users'), 'ids': ['user_id', 'email']},
    ],
    id_types={
        'email': {'exclude_regex': ['@example\\.com$']},
        'anonymous_id': {'max_edges': {'user_id': 5}},
        'user_id': {'max_edges': {'email': 3}},
    }
) }}
