{#- How many rows the destination holds as far as the sync knows: the rows of its snapshot (what it last
    acknowledged). Safeguards measure a plan's deletes and changes against it. -#}
{% macro sync_snapshot_rows(sync) %}
    {{ return(adapter.dispatch('sync_snapshot_rows', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_snapshot_rows(sync) %}
    {%- set sql = dbt_studio.sync_snapshot_rows_sql(sync) -%}
    {%- if run_query(sql.exists).rows | length == 0 -%}
        {{ return(0) }}
    {%- endif -%}
    {{ return(run_query(sql.query).rows[0][0] | int) }}
{% endmacro %}

{#- The same count as statements (`exists`: a row when the snapshot exists; `query`: its row count), for runners
    that keep them compiled and run them without dbt (a dry run's safeguard check). -#}
{% macro sync_snapshot_rows_sql(sync) %}
    {{ return(adapter.dispatch('sync_snapshot_rows_sql', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_snapshot_rows_sql(sync) %}
    {%- set snapshot = dbt_studio._state_relation(sync, sync.name ~ '__snapshot') -%}
    {{ return({'exists': dbt_studio._relation_exists_sql(snapshot),
               'query': 'select count(*) from ' ~ snapshot}) }}
{% endmacro %}
