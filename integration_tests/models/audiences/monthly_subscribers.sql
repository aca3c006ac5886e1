{#- Monthly subscribers: users related to subscriptions through memberships (a through relationship). -#}
{{ dbt_studio.audience(
    parent='stg_users',
    where={'has': 'stg_subscriptions', 'via': 'stg_memberships', 'where': {'column': 'delivery', 'op': '=', 'value': 'monthly'}},
    traits=[{'name': 'subscriptions', 'related': 'stg_subscriptions', 'agg': 'count'}],
    as_of=var('as_of', '2026-01-01'),
) }}
