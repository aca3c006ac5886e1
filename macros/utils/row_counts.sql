{#- Row counts of a list of relations, as rows of (relation, row_count); used by `dbt-studio demo`. -#}
{% macro row_counts(relations) %}
    {{ return(adapter.dispatch('row_counts', 'dbt_studio')(relations)) }}
{% endmacro %}

{% macro default__row_counts(relations) %}
    {%- if relations | length == 0 -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        {%- for relation in relations %}
        select '{{ relation }}' as relation_name, count(*) as row_count from {{ relation }}
        {%- if not loop.last %}
        union all
        {%- endif -%}
        {%- endfor %}
    {%- endset -%}
    {%- set result = run_query(query) -%}
    {{ return(result.rows | map('list') | list) }}
{% endmacro %}
