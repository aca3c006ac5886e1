{#-
    Audience sizes per build, kept in the state schema (`<target schema>_dbt_studio.audience_sizes`): one row per
    audience model built and split group ('' for the whole audience) with the dbt invocation that built it.
    Opt in from a project's dbt_project.yml:

        on-run-end: ["{{ dbt_studio.record_audience_sizes(results) }}"]

    The studio's size history chart reads it with `studio_size_history_sql`.
-#}
{% macro record_audience_sizes(results) %}
    {{ return(adapter.dispatch('record_audience_sizes', 'dbt_studio')(results)) }}
{% endmacro %}

{% macro default__record_audience_sizes(results) %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set parts = [] -%}
    {%- for result in results
        if result.node.resource_type == 'model' and result.status == 'success'
        and (result.node.config.meta or {}).get('dbt_studio_audience') is not none -%}
        {%- set spec = result.node.config.meta.dbt_studio_audience -%}
        {%- set relation = api.Relation.create(database=result.node.database, schema=result.node.schema,
                                               identifier=result.node.alias) -%}
        {%- set head = 'select ' ~ dbt_studio.string_literal(result.node.name) ~ ' as audience, ' -%}
        {%- do parts.append(head ~ "'' as split_group, count(*) as members from " ~ relation) -%}
        {%- if spec.get('splits') -%}
            {%- set column = spec.splits.get('column') or 'split_group' -%}
            {%- do parts.append(head ~ 'cast(' ~ column ~ ' as ' ~ dbt.type_string() ~ '), count(*) from '
                ~ relation ~ ' group by ' ~ column) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if parts | length == 0 -%}{{ return('') }}{%- endif -%}
    {%- set table = dbt_studio._audience_sizes_relation() -%}
    {%- do adapter.create_schema(api.Relation.create(database=target.database, schema=table.schema)) -%}
    {%- do run_query('create table if not exists ' ~ table ~ ' (audience ' ~ dbt.type_string()
        ~ ', split_group ' ~ dbt.type_string() ~ ', members ' ~ dbt.type_bigint() ~ ', invocation_id '
        ~ dbt.type_string() ~ ', built_at ' ~ dbt.type_timestamp() ~ ')') -%}
    {%- do run_query('insert into ' ~ table ~ ' (audience, split_group, members, invocation_id, built_at)\n'
        ~ 'select audience, split_group, members, ' ~ dbt_studio.string_literal(invocation_id) ~ ', '
        ~ dbt.current_timestamp() ~ '\nfrom (\n' ~ (parts | join('\nunion all\n')) ~ '\n) as sizes') -%}
    {%- do adapter.commit() -%}
    {{ return('') }}
{% endmacro %}

{% macro _audience_sizes_relation() %}
    {%- set schema = target.schema ~ dbt_studio.setting('state_schema_suffix') -%}
    {{ return(api.Relation.create(database=target.database, schema=schema, identifier='audience_sizes')) }}
{% endmacro %}

{#- The recorded sizes (audience, split_group, members, built_at), oldest first, or none before the first
    record. Returns SQL or none. -#}
{% macro studio_size_history_sql(limit=2000) %}
    {{ return(adapter.dispatch('studio_size_history_sql', 'dbt_studio')(limit)) }}
{% endmacro %}

{% macro default__studio_size_history_sql(limit) %}
    {%- set table = dbt_studio._audience_sizes_relation() -%}
    {%- if not dbt_studio._relation_exists(table) -%}{{ return(none) }}{%- endif -%}
    {%- set sql -%}
select audience, split_group, members, built_at
from (
    select audience, split_group, members, built_at,
        row_number() over (partition by audience, split_group order by built_at desc) as recent
    from {{ table }}
) as sizes
where recent <= {{ limit | int }}
order by built_at, audience, split_group
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}
