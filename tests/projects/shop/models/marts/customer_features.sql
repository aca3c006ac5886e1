{{ dbt_studio.entity_features(
    id_graph=ref('id_graph'),
    inputs={
        'customers': {'relation': ref('stg_customers'), 'ids': ['customer_id', 'email'], 'timestamp': 'signed_up_at'},
        'orders': {'relation': ref('stg_orders'), 'ids': ['email'], 'timestamp': 'ordered_at'},
        'sessions': {'relation': ref('stg_sessions'), 'ids': ['anonymous_id', 'customer_id'], 'timestamp': 'ts'},
    },
    vars=[
        {'name': 'customer_id', 'from': 'customers', 'select': 'min(customer_id)'},
        {'name': 'email', 'from': 'customers', 'select': 'min(email)'},
        {'name': 'first_name', 'from': 'customers', 'select': 'min(first_name)'},
        {'name': 'plan', 'from': 'customers', 'select': 'max(plan)'},
        {'name': 'paid_orders', 'from': 'orders', 'select': 'count(*)', 'where': "status = 'paid'", 'default': 0},
        {'name': 'revenue', 'from': 'orders', 'select': 'sum(amount)', 'where': "status = 'paid'", 'default': 0},
        {'name': 'sessions', 'from': 'sessions', 'select': 'count(*)', 'default': 0},
    ],
    features=['customer_id', 'email', 'first_name', 'plan', 'paid_orders', 'revenue', 'sessions'],
    as_of=var('as_of', '2026-01-01')
) }}
