{{ config(materialized="table") }}
{#-
    The Customer 360 table of the plant store: the five features of the RudderStack Profiles guide plus
    plant-store traits, one row per main_id of the id graph, as of the `as_of` var (default the generator's
    REFERENCE_TIME, so the example is deterministic). Sessions and per-product purchase counts are grouped
    inputs (one row per person and session / product), the GROUP BY an analyst would write.
-#}
{{ dbt_studio.entity_features(
    id_graph=ref('user_id_stitcher'),
    inputs={
        'identifies': {'relation': ref('stg_identifies'), 'ids': ['anonymous_id', 'user_id', 'email'], 'timestamp': 'timestamp'},
        'tracks': {'relation': ref('stg_tracks'), 'ids': ['anonymous_id', 'user_id'], 'timestamp': 'timestamp'},
        'purchases': {'relation': ref('stg_purchases'), 'ids': ['user_id'], 'timestamp': 'purchased_at'},
        'sessions': {'from': 'tracks', 'group_by': ['session_id'], 'timestamp': 'session_start_time',
                     'columns': {'session_start_time': 'min(timestamp)', 'session_end_time': 'max(timestamp)'}},
        'product_counts': {'from': 'purchases', 'group_by': ['product_name'], 'columns': {'purchases': 'count(*)'}},
    },
    vars=[
        {'name': 'n_active_days_total', 'from': 'tracks', 'select': 'count(distinct cast(timestamp as date))'},
        {'name': 'orders_completed_in_past_365_days', 'from': 'tracks', 'select': 'count(*)',
         'where': "event = 'order_completed'", 'window_days': 365},
        {'name': 'first_seen_tracks', 'from': 'tracks', 'select': 'min(timestamp)'},
        {'name': 'first_seen_identifies', 'from': 'identifies', 'select': 'min(timestamp)'},
        {'name': 'first_seen_date',
         'select': 'cast(least(coalesce(first_seen_tracks, first_seen_identifies), coalesce(first_seen_identifies, first_seen_tracks)) as date)'},
        {'name': 'campaign_source_first_touch', 'from': 'identifies', 'select': 'first_value(context_campaign_source)',
         'order_by': 'timestamp', 'where': "context_campaign_source is not null and context_campaign_source <> ''"},
        {'name': 'session_length', 'kind': 'input', 'from': 'sessions',
         'select': dbt.datediff('session_start_time', 'session_end_time', 'second')},
        {'name': 'avg_session_length_in_sec_last_7_days', 'from': 'sessions', 'select': 'avg(session_length)',
         'window_days': 7},
        {'name': 'lifetime_value', 'from': 'purchases', 'select': 'sum(price)', 'default': 0},
        {'name': 'plants_owned', 'from': 'purchases', 'select': 'count(distinct plant_id)'},
        {'name': 'coupon_purchases', 'from': 'purchases', 'select': 'count_if(used_coupon)'},
        {'name': 'most_frequent_product', 'from': 'product_counts', 'select': 'first_value(product_name)',
         'order_by': ['purchases desc', 'product_name']},
        {'name': 'last_purchase_at', 'from': 'purchases', 'select': 'max(purchased_at)'},
        {'name': 'days_since_last_purchase', 'select': dbt.datediff('last_purchase_at', '{{ as_of }}', 'day')},
    ],
    features=[
        'n_active_days_total', 'orders_completed_in_past_365_days', 'first_seen_date', 'campaign_source_first_touch',
        'avg_session_length_in_sec_last_7_days', 'lifetime_value', 'plants_owned', 'coupon_purchases', 'most_frequent_product',
        'days_since_last_purchase',
    ],
    as_of=var('as_of', '2026-01-01')
) }}
