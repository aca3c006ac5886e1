{#- Owners of a given plant type: bought a plant whose name says succulent-like (aloe, jade, snake plant ...). -#}
{{ dbt_studio.audience(
    parent='stg_users',
    where={'has': 'stg_purchases', 'where': {'column': 'product_name', 'op': 'in',
                                             'value': ['Aloe Vera', 'Jade Plant', 'Snake Plant']}},
    columns=['geo_region'],
    as_of=var('as_of', '2026-01-01'),
) }}
