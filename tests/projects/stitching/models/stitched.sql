{{ config(materialized='id_stitcher') }}

{{ dbt_studio.id_edges(
    sources=[
        {'relation': ref('stitch_rows'), 'ids': {'a': 'id_a', 'b': 'id_b', 'c': 'id_c'}, 'timestamp': 'ts'},
        {'relation': ref('stitch_rows'), 'name': 'untrusted', 'ids': {'a': 'id_a', 'd': 'id_d'}, 'trust': ['a'], 'timestamp': 'ts'},
    ],
    id_types=var('id_types', {})
) }}
