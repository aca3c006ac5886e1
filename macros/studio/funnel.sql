{#-
    The builder's funnel: the parent's rows (`n0`), the size after each top-level condition of a draft audience
    (cumulative: `n1` = condition 1, `n2` = 1 and 2, ...) and the members of each split group (`s1`, `s2`, ... in
    the order of `splits.groups`), in one pass over the parent.

        {{ dbt_studio.studio_funnel_sql(nodes, {'parent': 'stg_users', 'where': {...}, 'splits': {...}}) }}

    `nodes` is the shape `_schema_nodes()` builds (the studio reads it from manifest.json); `sets`, the kept
    condition sets of the top-level conditions (condition_sets.sql), read instead of evaluating them; `disabled`,
    the project's disabled models (name -> "model 'x' is disabled (enabled: false, <file>)", from manifest.json),
    so a relationship to one says so rather than "unknown model" (every studio macro takes it). Returns SQL.
-#}
{% macro studio_funnel_sql(nodes, spec, sets=none, disabled=none) %}
    {{ return(adapter.dispatch('studio_funnel_sql', 'dbt_studio')(nodes, spec, sets, disabled)) }}
{% endmacro %}

{% macro default__studio_funnel_sql(nodes, spec, sets, disabled) %}
    {%- set schema = dbt_studio._schema(nodes, disabled=disabled) -%}
    {%- set ctx = dbt_studio._studio_ctx(schema, spec) -%}
    {%- set parent = schema.models[spec.parent] -%}
    {%- set scope = {'alias': 'p', 'model': spec.parent, 'joins': []} -%}
    {#- each condition once, as a flag; the steps add them up cumulatively -#}
    {%- set flags = [] -%}
    {%- set sums = ['count(*) as n0'] -%}
    {%- set so_far = [] -%}
    {%- for flag in dbt_studio._studio_flags(spec, ctx, scope, parent, sets) -%}
        {%- do flags.append('(' ~ flag ~ ') as f' ~ loop.index) -%}
        {%- do so_far.append('f' ~ loop.index) -%}
        {%- do sums.append('sum(case when ' ~ (so_far | join(' and ')) ~ ' then 1 else 0 end) as n' ~ loop.index) -%}
    {%- endfor -%}
    {%- if flags | length == 0 -%}{%- do flags.append('1 as f0') -%}{%- endif -%}
    {%- set keys = [] -%}
    {%- if spec.get('splits') -%}
        {#- the split group of members only (its md5 costs more than a flag, and only members are counted), one
            level up, from the keys -#}
        {%- for k in parent.primary_key -%}{%- do keys.append('p.' ~ k) -%}{%- endfor -%}
        {%- for g in spec.splits.groups -%}
            {%- do sums.append('sum(case when split_group = ' ~ dbt_studio.string_literal(g)
                               ~ ' then 1 else 0 end) as s' ~ loop.index) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set rows -%}
    select {{ (keys + flags) | join(',\n        ') }}
    from {{ parent.relation }} as p
    {%- for j in scope.joins %}
    {{ j }}
    {%- endfor %}
    {%- endset -%}
    {%- set sql -%}
{{ dbt_studio._studio_with(ctx) }}
select {{ sums | join(',\n    ') }}
from (
{%- if keys %}
    select {{ (so_far or ['f0']) | join(', ') }},
        case when {{ so_far | join(' and ') or 'true' }}
            then {{ dbt_studio._studio_split_expr(spec.splits, ctx, parent) }} end as split_group
    from (
    {{ rows | trim }}
    ) as p
{%- else %}
{{ rows }}
{%- endif %}
) as flags
    {%- endset -%}
    {{ return(sql | trim) }}
{% endmacro %}
