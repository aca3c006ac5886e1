{#-
    Suggested values of one column for the builder: the `limit` most frequent non-null values (as text) with their
    counts, ties by value. Returns SQL.
-#}
{% macro studio_values_sql(relation, column, limit=20) %}
    {{ return(adapter.dispatch('studio_values_sql', 'dbt_studio')(relation, column, limit)) }}
{% endmacro %}

{% macro default__studio_values_sql(relation, column, limit) %}
    {%- set sql -%}
select cast({{ column }} as {{ dbt.type_string() }}) as value, count(*) as occurrences
from {{ relation }}
where {{ column }} is not null
group by {{ column }}
order by occurrences desc, value
limit {{ limit | int }}
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}

{#- A few rows of a model for the schema page. Returns SQL. -#}
{% macro studio_sample_sql(relation, limit=3) %}
    {{ return(adapter.dispatch('studio_sample_sql', 'dbt_studio')(relation, limit)) }}
{% endmacro %}

{% macro default__studio_sample_sql(relation, limit) %}
    {{ return('select * from ' ~ relation ~ ' limit ' ~ (limit | int)) }}
{% endmacro %}
