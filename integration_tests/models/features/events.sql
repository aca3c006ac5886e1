{#- Customer -> Transaction -> Event (seed 001): every tracked event keyed by the person's main_id
    (anonymous events before signup included, through the id graph). -#}
{{ config(materialized='table') }}

{{ dbt_studio.with_main_id(ref('user_id_stitcher'), ref('stg_tracks'), ['anonymous_id', 'user_id']) }}
