{#- The model under sync. Tests declare its syncs in models/_people.yml (SyncProject.build writes it, so a new
    set of syncs re-parses one file); a `syncs` var, as the CLI tests pass it, overrides the file. -#}
{%- if var('syncs', none) is not none %}
{{ config(materialized='table', meta={'dbt_studio': {'primary_key': var('primary_key', 'user_id'), 'syncs': var('syncs')}}) }}
{%- else %}
{{ config(materialized='table') }}
{%- endif %}

select * from {{ ref('people_rows') }}
