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

{#- Make `staged` the new `target` in one step that readers never see half done; `staged` is gone after. -#}
{% macro _replace_table(staged, target) %}
    {{ return(adapter.dispatch('_replace_table', 'dbt_studio')(staged, target)) }}
{% endmacro %}

{% macro default___replace_table(staged, target) %}
    {%- do run_query(dbt_studio._create_table_as(target, 'select * from ' ~ staged)) -%}
    {%- do adapter.drop_relation(staged) -%}
{% endmacro %}

{#- DuckDB: DDL is transactional, so a drop and a rename inside dbt's transaction swap without a copy. -#}
{% macro duckdb___replace_table(staged, target) %}
    {%- do adapter.drop_relation(target) -%}
    {%- do adapter.rename_relation(staged, target) -%}
{% endmacro %}

{#- Work tables of a multi-statement materialization: never read by users, dropped at the end. DuckDB keeps
    them in memory (temporary tables, unqualified); Snowflake makes them transient (no fail-safe storage). -#}
{% macro _work_relation(target, suffix) %}
    {{ return(adapter.dispatch('_work_relation', 'dbt_studio')(target, suffix)) }}
{% endmacro %}

{% macro default___work_relation(target, suffix) %}
    {{ return(dbt_studio._sibling(target, suffix)) }}
{% endmacro %}

{% macro duckdb___work_relation(target, suffix) %}
    {{ return(api.Relation.create(identifier=target.identifier ~ suffix, type='table')) }}
{% endmacro %}

{% macro _create_work_table(relation, sql) %}
    {{ return(adapter.dispatch('_create_work_table', 'dbt_studio')(relation, sql)) }}
{% endmacro %}

{% macro default___create_work_table(relation, sql) -%}
{{ dbt_studio._create_table_as(relation, sql) }}
{%- endmacro %}

{% macro duckdb___create_work_table(relation, sql) -%}
create or replace temporary table {{ relation }} as (
{{ sql }}
)
{%- endmacro %}

{% macro snowflake___create_work_table(relation, sql) -%}
create or replace transient table {{ relation }} as (
{{ sql }}
)
{%- endmacro %}

{#- `with x as materialized (...)`: DuckDB otherwise inlines a CTE into every branch that reads it. -#}
{% macro _materialized_cte() %}
    {{ return(adapter.dispatch('_materialized_cte', 'dbt_studio')()) }}
{% endmacro %}

{% macro default___materialized_cte() %}{{ return('') }}{% endmacro %}

{% macro duckdb___materialized_cte() %}{{ return('materialized ') }}{% endmacro %}

{#- An expression for the physical row of `alias` that a later statement of the same transaction can delete by
    (DuckDB's rowid), or none where the warehouse has none to offer (Snowflake): callers fall back to keys. -#}
{% macro _row_locator(alias) %}
    {{ return(adapter.dispatch('_row_locator', 'dbt_studio')(alias)) }}
{% endmacro %}

{% macro default___row_locator(alias) %}{{ return(none) }}{% endmacro %}

{% macro duckdb___row_locator(alias) %}{{ return(alias ~ '.rowid') }}{% endmacro %}

{#- Whether a relation exists, asked of the warehouse rather than dbt's relation cache: state tables are
    created outside dbt's materializations and by other processes, so the cache cannot be trusted here. -#}
{% macro _relation_exists(relation) %}
    {{ return(dbt_studio._existing_relations([relation]) | length > 0) }}
{% endmacro %}

{#- The identifiers (lower-cased) of those of `relations`, all in one database and schema, that exist: one
    metadata query for several (on Snowflake each is a round trip to the cloud services layer). -#}
{% macro _existing_relations(relations) %}
    {%- set found = [] -%}
    {%- for row in run_query(dbt_studio._relations_exist_sql(relations)).rows -%}
        {%- do found.append(row[0] | lower) -%}
    {%- endfor -%}
    {{ return(found) }}
{% endmacro %}

{#- A query with a row for `relation` if it exists (kept SQL reads its answer). -#}
{% macro _relation_exists_sql(relation) %}
    {{ return(dbt_studio._relations_exist_sql([relation])) }}
{% endmacro %}

{#- A query with a row (the table's name) for each of `relations`, all in one database and schema, that exists. -#}
{% macro _relations_exist_sql(relations) %}
    {{ return(adapter.dispatch('_relations_exist_sql', 'dbt_studio')(relations)) }}
{% endmacro %}

{% macro default___relations_exist_sql(relations) -%}
select table_name
from {{ relations[0].database }}.information_schema.tables
where lower(table_schema) = lower({{ dbt_studio.string_literal(relations[0].schema) }})
  and lower(table_name) in ({{ dbt_studio._lowered_identifiers(relations) }})
{%- endmacro %}

{% macro duckdb___relations_exist_sql(relations) -%}
select table_name
from information_schema.tables
where lower(table_catalog) = lower({{ dbt_studio.string_literal(relations[0].database) }})
  and lower(table_schema) = lower({{ dbt_studio.string_literal(relations[0].schema) }})
  and lower(table_name) in ({{ dbt_studio._lowered_identifiers(relations) }})
{%- endmacro %}

{% macro _lowered_identifiers(relations) -%}
    {%- for relation in relations -%}
        lower({{ dbt_studio.string_literal(relation.identifier) }}){{ ', ' if not loop.last }}
    {%- endfor -%}
{%- endmacro %}

{#- Statements in order; returns the last one's result (run_query's table), so a step can end with the query
    that decides what comes next. DuckDB runs them in one call (one trip through dbt's statement handling
    instead of one each); Snowflake's connector takes one statement per call. -#}
{% macro _run_statements(statements) %}
    {{ return(adapter.dispatch('_run_statements', 'dbt_studio')(statements)) }}
{% endmacro %}

{% macro default___run_statements(statements) %}
    {%- set last = {'result': none} -%}
    {%- for sql in statements -%}
        {%- do last.update({'result': run_query(sql)}) -%}
    {%- endfor -%}
    {{ return(last.result) }}
{% endmacro %}

{% macro duckdb___run_statements(statements) %}
    {{ return(run_query(statements | join(';\n'))) }}
{% endmacro %}

{#- Drops a materialization's work tables at its end: on DuckDB in one call (they are temporary tables, outside
    dbt's relation cache), elsewhere through adapter.drop_relation. -#}
{% macro _drop_work_tables(relations) %}
    {{ return(adapter.dispatch('_drop_work_tables', 'dbt_studio')(relations)) }}
{% endmacro %}

{% macro default___drop_work_tables(relations) %}
    {%- for relation in relations -%}
        {%- do adapter.drop_relation(relation) -%}
    {%- endfor -%}
{% endmacro %}

{% macro duckdb___drop_work_tables(relations) %}
    {%- set drops = [] -%}
    {%- for relation in relations -%}
        {%- do drops.append('drop table if exists ' ~ relation) -%}
    {%- endfor -%}
    {%- do dbt_studio._run_statements(drops) -%}
{% endmacro %}
