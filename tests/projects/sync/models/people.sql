{#- The model under sync: its syncs come from the `syncs` var so each test can declare its own. -#}
{{ config(materialized='table', meta={'dbt_studio': {'primary_key': var('primary_key', 'user_id'), 'syncs': var('syncs', [])}}) }}

select * from {{ ref('people_rows') }}
