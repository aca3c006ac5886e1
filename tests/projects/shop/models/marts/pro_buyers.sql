{#- Customers on a paid plan with at least one paid order; 20% held out. -#}
{{ dbt_studio.audience(
    parent='customer_features',
    where={'and': [
        {'column': 'plan', 'op': 'in', 'value': ['pro', 'team']},
        {'has': 'stg_orders', 'where': {'column': 'status', 'op': '=', 'value': 'paid'}},
    ]},
    splits={'groups': {'treatment': 80, 'holdout': 20}, 'holdout': 'holdout', 'salt': 'shop'},
    as_of=var('as_of', '2026-01-01'),
) }}
