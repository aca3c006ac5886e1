{#- Grouped inputs: visits grouped per person and session (a null session_id is one group) and per person and
    kind; `visits` itself has no var, it only feeds the grouped inputs. -#}
{{ dbt_studio.entity_features(
    id_graph=ref('id_graph'),
    inputs={
        'visits': {'relation': ref('visits'), 'ids': ['user_id', 'email'], 'timestamp': 'ts'},
        'sessions': {'from': 'visits', 'group_by': ['session_id'], 'timestamp': 'started_at',
                     'columns': {'started_at': 'min(ts)', 'ended_at': 'max(ts)', 'n_rows': 'count(*)',
                                 'spend': 'sum(amount)'}},
        'kinds': {'from': 'visits', 'group_by': 'kind', 'columns': {'n': 'count(*)'}},
    },
    vars=[
        {'name': 'n_sessions', 'from': 'sessions', 'select': 'count(*)'},
        {'name': 'n_sessions_30d', 'from': 'sessions', 'select': 'count(*)', 'window_days': 30},
        {'name': 'multi_row_sessions', 'from': 'sessions', 'select': 'count(*)', 'where': 'n_rows > 1'},
        {'name': 'session_seconds', 'kind': 'input', 'from': 'sessions',
         'select': dbt.datediff('started_at', 'ended_at', 'second')},
        {'name': 'longest_session_seconds', 'from': 'sessions', 'select': 'max(session_seconds)'},
        {'name': 'best_session_spend', 'from': 'sessions', 'select': 'max(spend)', 'default': 0},
        {'name': 'top_kind', 'from': 'kinds', 'select': 'first_value(kind)', 'order_by': ['n desc', 'kind']},
    ],
    features=['n_sessions', 'n_sessions_30d', 'multi_row_sessions', 'longest_session_seconds', 'best_session_spend',
              'top_kind'],
    as_of=var('as_of', '2026-01-01')
) }}
