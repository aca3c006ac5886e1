{#-
    The last build of every synced model, kept in the state schema (`<target schema>_dbt_studio.model_builds`):
    unique_id, the checksum of its definition then, status, invocation and time. The package's on-run-end hook
    records it after each `dbt build` / `dbt run`, so that after a `dbt parse` or `dbt compile` (which write a new
    manifest.json) the runner still knows what was built: it syncs a model whose definition is unchanged since its
    last successful build and refuses, naming it, one that changed.
-#}
{% macro record_builds(results) %}
    {{ return(adapter.dispatch('record_builds', 'dbt_studio')(results)) }}
{% endmacro %}

{% macro default__record_builds(results) %}
    {%- if not execute or invocation_args_dict.get('which') not in ('build', 'run') -%}{{ return('') }}{%- endif -%}
    {%- set rows = [] -%}
    {%- for result in results if result.node.resource_type == 'model'
                                 and ((result.node.config.meta or {}).get('dbt_studio') or {}) is mapping
                                 and ((result.node.config.meta or {}).get('dbt_studio') or {}).get('syncs') -%}
        {%- do rows.append('select ' ~ dbt_studio.string_literal(result.node.unique_id) ~ ' as unique_id, '
                           ~ dbt_studio.string_literal(result.node.checksum.checksum) ~ ' as checksum, '
                           ~ dbt_studio.string_literal(result.status) ~ ' as status') -%}
    {%- endfor -%}
    {%- if rows | length == 0 -%}{{ return('') }}{%- endif -%}
    {%- set table = dbt_studio._builds_relation() -%}
    {%- do adapter.create_schema(api.Relation.create(database=target.database, schema=table.schema)) -%}
    {%- set string = dbt.type_string() -%}
    {%- do run_query('create table if not exists ' ~ table ~ ' (unique_id ' ~ string ~ ', checksum ' ~ string
                     ~ ', status ' ~ string ~ ', invocation_id ' ~ string ~ ', built_at ' ~ dbt.type_timestamp()
                     ~ ')') -%}
    {%- set built = rows | join('\nunion all\n') -%}
    {%- do run_query('delete from ' ~ table ~ ' where unique_id in (select unique_id from (' ~ built
                     ~ ') as built)') -%}
    {%- do run_query('insert into ' ~ table ~ ' (unique_id, checksum, status, invocation_id, built_at)\n'
                     ~ 'select unique_id, checksum, status, ' ~ dbt_studio.string_literal(invocation_id) ~ ', '
                     ~ dbt_studio._now() ~ '\nfrom (\n' ~ built ~ '\n) as built') -%}
    {%- do adapter.commit() -%}
    {{ return('') }}
{% endmacro %}

{% macro _builds_relation() %}
    {{ return(api.Relation.create(database=target.database, identifier='model_builds', type='table',
                                  schema=target.schema ~ dbt_studio.setting('state_schema_suffix'))) }}
{% endmacro %}

{#- {unique_id: [checksum, status, invocation_id]} of every recorded build (empty before the first). -#}
{% macro sync_model_builds() %}
    {{ return(adapter.dispatch('sync_model_builds', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__sync_model_builds() %}
    {%- set sql = dbt_studio.sync_model_builds_sql() -%}
    {%- set out = {} -%}
    {%- if run_query(sql.exists).rows | length > 0 -%}
        {%- for row in run_query(sql.query).rows -%}
            {%- do out.update({row[0]: [row[1], row[2], row[3]]}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(out) }}
{% endmacro %}

{#- The same records as statements (`exists`: a row when the table exists; `query`: unique_id, checksum, status,
    invocation_id), for runners that keep them compiled and read them without dbt. -#}
{% macro sync_model_builds_sql() %}
    {{ return(adapter.dispatch('sync_model_builds_sql', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__sync_model_builds_sql() %}
    {%- set table = dbt_studio._builds_relation() -%}
    {{ return({'exists': dbt_studio._relation_exists_sql(table),
               'query': 'select unique_id, checksum, status, invocation_id from ' ~ table}) }}
{% endmacro %}
