{#-
    Which of a model's rows a sync sends (`sync.rows`, built by the runner from the sync's settings):

      filter          a condition tree over the model's columns, the audience property syntax:
                      {column, op, value}, {and: [...]}, {or: [...]}, {not: {...}}
      split_groups    only rows whose split column (`split_column`) is one of these groups
      holdout_column  set (to is_holdout) unless the sync has include_holdout: true: holdout rows stay out

    The runner passes column names as the warehouse stores them. The plan reads only the selected rows, so a row
    that leaves the selection is gone from the model as far as the sync is concerned: a delete per on_delete.
-#}
{% macro sync_rows_predicate(sync) %}
    {{ return(adapter.dispatch('sync_rows_predicate', 'dbt_studio')(sync)) }}
{% endmacro %}

{#- The predicate (SQL over the model's columns, unqualified), or none when every row is sent. -#}
{% macro default__sync_rows_predicate(sync) %}
    {%- set rows = sync.get('rows') or {} -%}
    {%- set parts = [] -%}
    {%- if rows.get('filter') is not none -%}
        {%- set ctx = {'name': sync.name, 'as_of': dbt_studio._as_of_sql(none), 'schema': none, 'mode': 'sync'} -%}
        {%- do parts.append(dbt_studio._sync_filter(rows.filter, ctx)) -%}
    {%- endif -%}
    {%- if rows.get('split_groups') -%}
        {%- set groups = [] -%}
        {%- for g in rows.split_groups -%}{%- do groups.append(dbt_studio.string_literal(g)) -%}{%- endfor -%}
        {%- do parts.append(dbt_studio._sync_ident(rows.split_column) ~ ' in (' ~ groups | join(', ') ~ ')') -%}
    {%- endif -%}
    {%- if rows.get('holdout_column') -%}
        {%- do parts.append('not coalesce(' ~ dbt_studio._sync_ident(rows.holdout_column) ~ ', false)') -%}
    {%- endif -%}
    {{ return(('(' ~ parts | join(') and (') ~ ')') if parts else none) }}
{% endmacro %}

{#- One node of a filter tree; under a `not` each leaf is null-safe, so `not` is the exact complement. -#}
{% macro _sync_filter(node, ctx, nullsafe=false) %}
    {%- if 'and' in node or 'or' in node -%}
        {%- set kind = 'and' if 'and' in node else 'or' -%}
        {%- set parts = [] -%}
        {%- for child in node[kind] -%}
            {%- do parts.append('(' ~ dbt_studio._sync_filter(child, ctx, nullsafe) ~ ')') -%}
        {%- endfor -%}
        {%- if parts | length == 0 -%}{{ return('true' if kind == 'and' else 'false') }}{%- endif -%}
        {{ return('(' ~ parts | join(' ' ~ kind ~ ' ') ~ ')') }}
    {%- elif 'not' in node -%}
        {{ return('not (' ~ dbt_studio._sync_filter(node['not'], ctx, true) ~ ')') }}
    {%- endif -%}
    {%- set compared = dbt_studio._compare(ctx, dbt_studio._sync_ident(node.column), node.get('op'),
                                           node.get('value')) -%}
    {{ return(dbt_studio._safe(compared, nullsafe)) }}
{% endmacro %}
