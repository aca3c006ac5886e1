{#- Column names of a relation (lower-cased unless `lower` is false: then as the warehouse stores them, which is
    how the sync macros quote them), so the runner can check mappings before planning. -#}
{% macro relation_columns(relation, lower=true) %}
    {{ return(adapter.dispatch('relation_columns', 'dbt_studio')(relation, lower)) }}
{% endmacro %}

{% macro default__relation_columns(relation, lower=true) %}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') -%}
    {{ return((columns | map('lower') if lower else columns) | list) }}
{% endmacro %}

{#- The columns of each relation (as stored; empty for one that does not exist), in order: `dbt-studio validate`
    checks the configuration against them, so that YAML docs that lag the SQL neither hide nor invent a column. -#}
{% macro relations_columns(relations, with_types=false) %}
    {{ return(adapter.dispatch('relations_columns', 'dbt_studio')(relations, with_types)) }}
{% endmacro %}

{#- `with_types`: [name, type, is a number type] instead of names. -#}
{% macro default__relations_columns(relations, with_types=false) %}
    {%- set out = [] -%}
    {%- for relation in relations -%}
        {%- if with_types -%}
            {%- set pairs = [] -%}
            {%- for c in adapter.get_columns_in_relation(relation) -%}
                {%- do pairs.append([c.name, c.dtype, dbt_studio._is_number_type(c.dtype)]) -%}
            {%- endfor -%}
            {%- do out.append(pairs) -%}
        {%- else -%}
            {%- do out.append(dbt_studio.relation_columns(relation, lower=false)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}

{#- The same names as a query (`column_name`, `data_type`, `is_number`, in column order; no rows when the relation
    does not exist), for runners that run it themselves and keep it compiled. -#}
{% macro relation_columns_sql(relation) %}
    {{ return(adapter.dispatch('relation_columns_sql', 'dbt_studio')(relation)) }}
{% endmacro %}

{% macro default__relation_columns_sql(relation) -%}
select column_name, data_type, {{ dbt_studio._is_number_type_sql('data_type') }} as is_number
from {{ relation.database }}.information_schema.columns
where lower(table_schema) = lower({{ dbt_studio.string_literal(relation.schema) }})
  and lower(table_name) = lower({{ dbt_studio.string_literal(relation.identifier) }})
order by ordinal_position
{%- endmacro %}

{% macro duckdb__relation_columns_sql(relation) -%}
select column_name, data_type, {{ dbt_studio._is_number_type_sql('data_type') }} as is_number
from information_schema.columns
where lower(table_catalog) = lower({{ dbt_studio.string_literal(relation.database) }})
  and lower(table_schema) = lower({{ dbt_studio.string_literal(relation.schema) }})
  and lower(table_name) = lower({{ dbt_studio.string_literal(relation.identifier) }})
order by ordinal_position
{%- endmacro %}

{#- The same columns from a statement that reads the one relation instead of listing the catalog, or none where
    the portable query is the only one: the first catalog listing of a DuckDB process builds every system view
    (10-20 ms, the largest single statement of a kept 10k-row sync), DESCRIBE reads one entry. It fails when the
    relation does not exist; the runner then asks relation_columns_sql, whose empty answer says so. -#}
{% macro relation_columns_read_sql(relation) %}
    {{ return(adapter.dispatch('relation_columns_read_sql', 'dbt_studio')(relation)) }}
{% endmacro %}

{% macro default__relation_columns_read_sql(relation) %}
    {{ return(none) }}
{% endmacro %}

{% macro duckdb__relation_columns_read_sql(relation) -%}
    {%- set named = api.Relation.create(database=relation.database, schema=relation.schema,
                                        identifier=relation.identifier) -%}
select column_name, column_type as data_type, {{ dbt_studio._is_number_type_sql('column_type') }} as is_number
from (describe {{ named }})
{%- endmacro %}
