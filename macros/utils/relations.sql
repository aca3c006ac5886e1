{#- Statement builders shared by the materializations and the sync engine. -#}

{% macro _create_table_as(relation, sql) %}
    {{ return(adapter.dispatch('_create_table_as', 'dbt_studio')(relation, sql)) }}
{% endmacro %}

{% macro default___create_table_as(relation, sql) -%}
create or replace table {{ relation }} as (
{{ sql }}
)
{%- endmacro %}

{#- A sibling relation of `relation` named `<identifier><suffix>` (work tables, side tables). -#}
{% macro _sibling(relation, suffix) %}
    {{ return(relation.incorporate(path={'identifier': relation.identifier ~ suffix}, type='table')) }}
{% endmacro %}

{% macro _insert_into(relation, sql) %}
    {{ return(adapter.dispatch('_insert_into', 'dbt_studio')(relation, sql)) }}
{% endmacro %}

{% macro default___insert_into(relation, sql) -%}
insert into {{ relation }}
{{ sql }}
{%- endmacro %}
