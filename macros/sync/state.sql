{#-
    Warehouse-side state of syncs, in one state schema (default `<target schema>_dbt_studio`):

      sync_runs             one row per sync run: counts, status, error
      sync_changelog        one row per acknowledged change (retention: var dbt_studio_changelog_retention_days)
      sync_configs          the fingerprint of each sync's primary key + mappings + mode; a change resets it
      sync_locks            one sync at a time per sync name
      <sync>__snapshot      primary key + tracked columns as the destination last acknowledged them
      <sync>__plan          this run's changes (_seq, _op, _key, tracked columns)
      <sync>__rejections    keys the destination rejected, with the reason and the number of attempts

    `sync` arguments are the dict the runner passes: {name, state_schema, key_columns, columns, mode,
    on_delete, fingerprint}.
-#}

{% macro _state_relation(sync, identifier) %}
    {{ return(api.Relation.create(database=target.database, schema=sync.state_schema, identifier=identifier,
                                  type='table')) }}
{% endmacro %}

{#- A sync's plan table as {database, schema, identifier}, for the runner (which reads its columns). -#}
{% macro sync_plan_relation(sync) %}
    {{ return(adapter.dispatch('sync_plan_relation', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_plan_relation(sync) %}
    {%- set plan = dbt_studio._state_relation(sync, sync.name ~ '__plan') -%}
    {{ return({'database': plan.database, 'schema': plan.schema, 'identifier': plan.identifier}) }}
{% endmacro %}

{#- The state schema's default name, for the runner (it reads the target from the profile). -#}
{% macro sync_default_state_schema() %}
    {{ return(adapter.dispatch('sync_default_state_schema', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__sync_default_state_schema() %}
    {{ return(target.schema ~ dbt_studio.setting('state_schema_suffix')) }}
{% endmacro %}

{% macro sync_prepare(sync) %}
    {{ return(adapter.dispatch('sync_prepare', 'dbt_studio')(sync)) }}
{% endmacro %}

{#- One metadata query tells which state tables exist; the schema and the missing tables are created only when
    one is missing (a sync that ran before asks nothing else). -#}
{% macro default__sync_prepare(sync) %}
    {%- set tables = dbt_studio._sync_state_tables(sync) -%}
    {%- set existing = dbt_studio._existing_relations(tables | map(attribute=0) | list) -%}
    {%- set missing = [] -%}
    {%- for relation, sql in tables if relation.identifier | lower not in existing -%}
        {%- do missing.append(sql) -%}
    {%- endfor -%}
    {%- if missing | length > 0 -%}
        {%- do adapter.create_schema(api.Relation.create(database=target.database, schema=sync.state_schema)) -%}
        {%- for sql in missing -%}
            {%- do run_query(sql) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- The statements of sync_prepare, each safe to run again: the state schema and the state tables if missing. -#}
{% macro sync_prepare_sql(sync) %}
    {{ return(adapter.dispatch('sync_prepare_sql', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_prepare_sql(sync) %}
    {%- set schema = api.Relation.create(database=target.database, schema=sync.state_schema) -%}
    {%- set statements = ['create schema if not exists ' ~ schema.without_identifier()] -%}
    {%- for relation, sql in dbt_studio._sync_state_tables(sync) -%}
        {%- do statements.append(sql) -%}
    {%- endfor -%}
    {{ return(statements) }}
{% endmacro %}

{#- (relation, create table if not exists ...) of each state table a sync writes (see the top of this file). -#}
{% macro _sync_state_tables(sync) %}
    {%- set string, ts, int = dbt.type_string(), dbt.type_timestamp(), dbt.type_bigint() -%}
    {%- set tables = {
        'sync_runs': [('run_id', string), ('sync_name', string), ('model', string), ('destination', string),
                      ('mode', string), ('started_at', ts), ('finished_at', ts), ('status', string),
                      ('planned_inserts', int), ('planned_updates', int), ('planned_deletes', int),
                      ('acknowledged', int), ('rejected', int), ('full_resync', 'boolean'), ('error', string)],
        'sync_changelog': [('run_id', string), ('sync_name', string), ('_key', string), ('op', string),
                           ('acknowledged_at', ts)],
        'sync_configs': [('sync_name', string), ('fingerprint', string), ('updated_at', ts)],
        'sync_locks': [('sync_name', string), ('holder', string), ('acquired_at', ts)],
        sync.name ~ '__rejections': [('_key', string), ('reason', string), ('attempts', int),
                                     ('first_rejected_at', ts), ('last_rejected_at', ts)],
    } -%}
    {%- set out = [] -%}
    {%- for name, columns in tables.items() -%}
        {%- set relation = dbt_studio._state_relation(sync, name) -%}
        {%- set definitions = [] -%}
        {%- for column, type in columns -%}{%- do definitions.append(column ~ ' ' ~ type) -%}{%- endfor -%}
        {%- do out.append([relation, 'create table if not exists ' ~ relation ~ ' (' ~ definitions | join(', ')
                                     ~ ')']) -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}

{#- Null and duplicate primary keys of the model, with a few examples: a sync stops on any. -#}
{% macro sync_check_keys(sync, source) %}
    {{ return(adapter.dispatch('sync_check_keys', 'dbt_studio')(sync, source)) }}
{% endmacro %}

{% macro default__sync_check_keys(sync, source) %}
    {%- set rows = run_query(dbt_studio.sync_check_keys_sql(sync, source)).rows -%}
    {%- set out = {'nulls': 0, 'duplicates': 0, 'examples': []} -%}
    {%- for row in rows -%}
        {%- if row[0] == 'null' -%}
            {%- do out.update({'nulls': row[2] | int}) -%}
        {%- else -%}
            {%- do out.update({'duplicates': out.duplicates + 1}) -%}
            {%- if out.examples | length < 5 -%}{%- do out.examples.append(row[1]) -%}{%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}

{#- The query behind sync_check_keys: rows of (problem 'null' | 'duplicate', example key, n). -#}
{% macro sync_check_keys_sql(sync, source) %}
    {{ return(adapter.dispatch('sync_check_keys_sql', 'dbt_studio')(sync, source)) }}
{% endmacro %}

{#- Only the rows the sync sends (its `filter`, split groups and holdout): a snapshot's history repeats every key,
    its current rows do not. -#}
{% macro default__sync_check_keys_sql(sync, source) -%}
    {%- set key = dbt_studio._sync_key_expr(sync.key_columns) -%}
    {%- set selected = dbt_studio.sync_rows_predicate(sync) -%}
    {%- set rows = source if selected is none
                   else '(select * from ' ~ source ~ ' where ' ~ selected ~ ') as selected' -%}
select 'null' as problem, cast(null as {{ dbt.type_string() }}) as example, count(*) as n
from {{ rows }}
where
    {%- for c in sync.key_columns %} {{ dbt_studio._sync_ident(c) }} is null{{ " or" if not loop.last }}
    {%- endfor %}
having count(*) > 0
union all
select 'duplicate' as problem, _key as example, count(*) as n
from (select {{ key }} as _key from {{ rows }}) as keys
where _key is not null
group by _key
having count(*) > 1
{%- endmacro %}

{#- The primary key as one string: the column itself, or its parts joined with '|'. -#}
{% macro _sync_key_expr(key_columns) -%}
    {%- set parts = [] -%}
    {%- for c in key_columns -%}
        {%- do parts.append('cast(' ~ dbt_studio._sync_ident(c) ~ ' as ' ~ dbt.type_string() ~ ')') -%}
        {%- if not loop.last -%}{%- do parts.append("'|'") -%}{%- endif -%}
    {%- endfor -%}
    {{ parts[0] if parts | length == 1 else dbt.concat(parts) }}
{%- endmacro %}

{#- A model column as a quoted identifier, exactly as the warehouse stores it (the runner passes stored names): a
    name with spaces, quotes or semicolons, or a reserved word, stays one identifier. -#}
{% macro _sync_ident(name) -%}
    "{{ name | replace('"', '""') }}"
{%- endmacro %}

{#- Several columns, quoted, comma-separated. -#}
{% macro _sync_idents(names, prefix='') -%}
    {%- for name in names -%}{{ prefix }}{{ dbt_studio._sync_ident(name) }}{{ ", " if not loop.last }}{%- endfor -%}
{%- endmacro %}
