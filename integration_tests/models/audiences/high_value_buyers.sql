{#- High-value buyers: at least two purchases worth 100 or more in total, with a 10% holdout. -#}
{{ dbt_studio.audience(
    parent='stg_users',
    where={'has': 'stg_purchases', 'having': [
        {'agg': 'count', 'op': '>=', 'value': 2},
        {'agg': 'sum', 'column': 'price', 'op': '>=', 'value': 100},
    ]},
    columns=['geo_region', 'age'],
    traits=[
        {'name': 'lifetime_value', 'related': 'stg_purchases', 'agg': 'sum', 'column': 'price'},
        {'name': 'favourite_plant', 'related': 'stg_purchases', 'agg': 'most_frequent', 'column': 'product_name'},
        {'name': 'last_plant', 'related': 'stg_purchases', 'agg': 'last', 'column': 'product_name', 'order_by': 'purchased_at'},
    ],
    splits={'groups': {'email': 90, 'holdout': 10}, 'holdout': 'holdout', 'salt': 'high-value-2026'},
    as_of=var('as_of', '2026-01-01'),
) }}
