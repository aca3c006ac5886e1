{#- Customer -> Transaction -> Event (seed 001): every purchase keyed by the buyer's main_id. -#}
{{ config(materialized='table') }}

{{ dbt_studio.with_main_id(ref('user_id_stitcher'), ref('stg_purchases'), ['user_id']) }}
