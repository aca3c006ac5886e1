{#- Suggested values for the audience builder: most frequent values of the columns flagged in _staging.yml. -#}
{{ dbt_studio.suggested_values(['stg_users', 'stg_purchases', 'stg_product_viewed', 'stg_tracks', 'stg_subscriptions'], limit=20) }}
