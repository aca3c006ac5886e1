{#- Customer -> Transaction -> Event (seed 001): the customer master model, one row per main_id — the
    customer record of the store (earliest user_id of the person) with the Customer 360 features. -#}
{{ config(materialized='table') }}

with accounts as (
    {{ dbt_studio.with_main_id(ref('user_id_stitcher'), ref('stg_users'), ['user_id']) | indent(4) }}
),

primary_account as (
    select
        main_id,
        min(user_id) as user_id,
        count(*) as n_accounts
    from accounts
    group by main_id
)

select
    profile.main_id,
    accounts.user_id,
    accounts.name,
    accounts.email,
    accounts.geo_region,
    accounts.age,
    primary_account.n_accounts,
    profile.first_seen_date,
    profile.campaign_source_first_touch,
    profile.n_active_days_total,
    profile.lifetime_value,
    profile.plants_owned,
    profile.most_frequent_product,
    profile.days_since_last_purchase,
    profile.valid_at
from {{ ref('user_profile') }} as profile
left join primary_account on primary_account.main_id = profile.main_id
left join accounts on accounts.main_id = primary_account.main_id and accounts.user_id = primary_account.user_id
