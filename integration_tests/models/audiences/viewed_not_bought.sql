{#- Viewed a product 3+ times in the last 30 days but never bought one, with a 10% holdout. -#}
{{ dbt_studio.audience(
    parent='stg_users',
    where={'and': [
        {'performed': 'stg_product_viewed', 'within_days': 30, 'times': {'op': '>=', 'value': 3}},
        {'has not': 'stg_purchases'},
    ]},
    splits={'groups': {'retarget': 90, 'holdout': 10}, 'holdout': 'holdout', 'salt': 'viewed-not-bought'},
    as_of=var('as_of', '2026-01-01'),
) }}
