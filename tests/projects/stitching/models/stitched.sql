{{ config(materialized='id_stitcher') }}

{{ dbt_studio.id_edges(
    sources=[
        {'relation': ref('stitch_rows'), 'ids': {'a': 'id_a', 'b': 'id_b', 'c': 'id_c'}, 'timestamp': 'ts',
         'loaded_at': var('loaded_at', none)},
        {'relation': ref('stitch_rows'), 'name': 'untrusted', 'ids': {'a': 'id_a', 'd': 'id_d'}, 'trust': ['a'], 'timestamp': 'ts',
         'loaded_at': var('loaded_at', none)},
    ],
    id_types=var('id_types', {})
) }}
