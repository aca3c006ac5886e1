{#- Defaults whatever the select (people with rows the filters remove, people with no rows) and identifier vars. -#}
{{ dbt_studio.entity_features(
    id_graph=ref('id_graph'),
    inputs={
        'visits': {'relation': ref('visits'), 'ids': ['user_id', 'email'], 'timestamp': 'ts'},
        'events': {'relation': ref('events'), 'ids': ['user_id', 'email'], 'timestamp': 'ts'},
    },
    vars=[
        {'name': 'email', 'id_type': 'email', 'pick': 'most_recent'},
        {'name': 'email_first', 'id_type': 'email', 'pick': 'first_seen'},
        {'name': 'email_frequent', 'id_type': 'email', 'pick': 'most_frequent'},
        {'name': 'phone', 'id_type': 'phone', 'default': "'none'"},
        {'name': 'n_visits', 'from': 'visits', 'select': 'count(*)'},
        {'name': 'n_emails', 'from': 'visits', 'select': 'count(distinct email)'},
        {'name': 'spend_30d', 'from': 'visits', 'select': 'coalesce(sum(amount), 0)', 'window_days': 30},
        {'name': 'repeat_views', 'from': 'visits', 'select': 'count(*) - count(distinct session_id)',
         'where': "kind = 'view'"},
        {'name': 'spend_30d_or_minus', 'from': 'visits', 'select': 'sum(amount)', 'window_days': 30, 'default': -1},
        {'name': 'buys_or_minus', 'from': 'visits', 'select': 'count(*)', 'where': "kind = 'buy'", 'default': -1},
        {'name': 'max_amount_plus', 'from': 'visits', 'select': 'coalesce(max(amount), 0) + 1'},
        {'name': 'spend_per_buy', 'from': 'visits', 'select': 'sum(amount) / nullif(count(*), 0)',
         'where': "kind = 'buy'"},
        {'name': 'contact', 'select': 'coalesce(email, phone)'},
    ],
    features=['email', 'email_first', 'email_frequent', 'phone', 'n_visits', 'n_emails', 'spend_30d', 'repeat_views',
              'spend_30d_or_minus', 'buys_or_minus', 'max_amount_plus', 'spend_per_buy', 'contact'],
    as_of=var('as_of', '2026-01-01')
) }}
