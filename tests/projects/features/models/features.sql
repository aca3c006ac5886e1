{#- A small feature table whose vars, features, events input and extra inputs tests set with --vars to make it
    invalid. -#}
{%- set events = {'relation': ref('events'), 'ids': ['user_id', 'email'], 'timestamp': 'ts'} -%}
{%- do events.update(var('events_input', {})) -%}
{{ dbt_studio.entity_features(
    id_graph=ref('id_graph'),
    inputs=dict({
        'events': events,
        'profiles': {'relation': ref('profiles'), 'ids': {'user_id': 'user_id'}},
    }, **var('extra_inputs', {})),
    vars=var('feature_vars', [
        {'name': 'n_events', 'from': 'events', 'select': 'count(*)'},
        {'name': 'n_buys_7d', 'from': 'events', 'select': 'count(*)', 'where': "kind = 'buy'", 'window_days': 7},
        {'name': 'spend', 'from': 'events', 'select': 'sum(amount)'},
        {'name': 'spend_7d', 'from': 'events', 'select': 'sum(amount)', 'window_days': 7},
        {'name': 'first_kind', 'from': 'events', 'select': 'first_value(kind)', 'order_by': 'ts'},
        {'name': 'last_kind', 'from': 'events', 'select': 'last_value(kind)', 'order_by': 'ts'},
        {'name': 'kind_rows', 'kind': 'input', 'from': 'events', 'select': 'count(*)', 'partition_by': ['main_id', 'kind']},
        {'name': 'top_kind', 'from': 'events', 'select': 'first_value(kind)', 'order_by': ['kind_rows desc', 'kind']},
        {'name': 'plan', 'from': 'profiles', 'select': 'max(plan)'},
        {'name': 'avg_spend', 'select': "case when n_events > 0 then spend / n_events end"},
    ]),
    features=var('feature_names', ['n_events', 'n_buys_7d', 'spend', 'spend_7d', 'first_kind', 'last_kind', 'top_kind', 'plan', 'avg_spend']),
    as_of=var('as_of', '2026-01-01')
) }}
