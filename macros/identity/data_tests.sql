{#- Data tests for id_stitcher outputs. -#}

{#- Fails (warns) when the largest cluster has more identifiers than `error_above` (`warn_above`): a giant
    cluster almost always means a junk identifier slipped through screening. -#}
{% test max_cluster_size(model, warn_above=none, error_above=none) %}
    {%- set warn_above = warn_above if warn_above is not none else dbt_studio.setting('max_cluster_size_warn') -%}
    {%- set error_above = error_above if error_above is not none else dbt_studio.setting('max_cluster_size_error') -%}
    {{ config(fail_calc='coalesce(max(cluster_size), 0)', warn_if='>' ~ warn_above, error_if='>' ~ error_above) }}
    {{ return(adapter.dispatch('test_max_cluster_size', 'dbt_studio')(model, warn_above)) }}
{% endtest %}

{% macro default__test_max_cluster_size(model, warn_above) %}
    select main_id, count(*) as cluster_size
    from {{ model }}
    group by main_id
    having count(*) > {{ warn_above }}
{% endmacro %}

{#- Every (id_type, id_value) belongs to exactly one main_id. -#}
{% test one_main_id_per_id(model) %}
    {{ return(adapter.dispatch('test_one_main_id_per_id', 'dbt_studio')(model)) }}
{% endtest %}

{% macro default__test_one_main_id_per_id(model) %}
    select id_type, id_value, count(*) as rows_for_id
    from {{ model }}
    group by id_type, id_value
    having count(*) > 1
{% endmacro %}
