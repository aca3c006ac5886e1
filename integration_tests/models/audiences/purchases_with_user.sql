{#- Purchases with their buyer's region and age merged on (the many:1 relationship declared on stg_purchases). -#}
-- depends_on: {{ ref('stg_users') }}
{{ dbt_studio.merged_columns('stg_purchases') }}
