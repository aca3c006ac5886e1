{#-
    Condition sets: the parent keys that satisfy one top-level condition of a draft audience, kept by the studio
    as a temporary table of its session. A marketer edits one condition at a time; with each condition's set kept
    (named after its compiled SQL), the funnel, the members and a breakdown of the edited draft evaluate only the
    condition that changed, then combine the sets — a join of keys instead of every event scan again.

        {{ dbt_studio.studio_condition_sets_sql(nodes, spec) }}   -- each condition's keys, as SQL
        {{ dbt_studio.studio_keep_sql('dbt_studio_c_1a2b', sql) }}           -- kept as a temporary table
        {{ dbt_studio.studio_funnel_sql(nodes, spec, sets=['dbt_studio_c_1a2b', ...]) }}

    The sets live as long as the studio's warehouse session; the studio drops them at the next build.
-#}
{% macro studio_condition_sets_sql(nodes, spec, disabled=none) %}
    {{ return(adapter.dispatch('studio_condition_sets_sql', 'dbt_studio')(nodes, spec, disabled)) }}
{% endmacro %}

{#- A list: for each top-level condition of `spec`, the SQL of the parent keys that satisfy it. -#}
{% macro default__studio_condition_sets_sql(nodes, spec, disabled) %}
    {%- set schema = dbt_studio._schema(nodes, disabled=disabled) -%}
    {%- set parent = schema.models[spec.parent] -%}
    {%- set keys = [] -%}
    {%- for k in parent.primary_key -%}{%- do keys.append('p.' ~ k) -%}{%- endfor -%}
    {%- set out = [] -%}
    {%- for condition in dbt_studio._studio_conditions(spec.get('where')) -%}
        {%- set ctx = dbt_studio._studio_ctx(schema, spec) -%}
        {%- set scope = {'alias': 'p', 'model': spec.parent, 'joins': []} -%}
        {%- set predicate = dbt_studio._cond(condition, ctx, scope) -%}
        {%- set sql -%}
{{ dbt_studio._studio_with(ctx) }}
select {{ keys | join(', ') }}
from {{ parent.relation }} as p
{%- for j in scope.joins %}
{{ j }}
{%- endfor %}
where {{ predicate }}
        {%- endset -%}
        {%- do out.append(sql | trim) -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}

{#- A query's rows kept as a temporary table of the session. -#}
{% macro studio_keep_sql(name, sql) %}
    {{ return(adapter.dispatch('studio_keep_sql', 'dbt_studio')(name, sql)) }}
{% endmacro %}

{% macro default__studio_keep_sql(name, sql) %}
    {{ return('create or replace temporary table ' ~ name ~ ' as\n' ~ sql) }}
{% endmacro %}

{% macro studio_drop_sql(name) %}
    {{ return(adapter.dispatch('studio_drop_sql', 'dbt_studio')(name)) }}
{% endmacro %}

{% macro default__studio_drop_sql(name) %}
    {{ return('drop table if exists ' ~ name) }}
{% endmacro %}

{#- The flag of one kept set: whether the parent row `p` is in it. -#}
{% macro _studio_in_set(parent, name) %}
    {%- set on = [] -%}
    {%- for k in parent.primary_key -%}{%- do on.append('s.' ~ k ~ ' = p.' ~ k) -%}{%- endfor -%}
    {{ return('exists (select 1 from ' ~ name ~ ' as s where ' ~ (on | join(' and ')) ~ ')') }}
{% endmacro %}

{#- The flags of the draft's top-level conditions: from the kept `sets` (one per condition, in order) when given,
    else each condition compiled in place. -#}
{% macro _studio_flags(spec, ctx, scope, parent, sets=none) %}
    {%- set conditions = dbt_studio._studio_conditions(spec.get('where')) -%}
    {%- set flags = [] -%}
    {%- if sets is not none and sets | length != conditions | length -%}
        {{ exceptions.raise_compiler_error("dbt_studio: studio: " ~ sets | length ~ " condition sets for "
                                           ~ conditions | length ~ " conditions") }}
    {%- endif -%}
    {%- for c in conditions -%}
        {%- if sets is not none -%}
            {%- do flags.append(dbt_studio._studio_in_set(parent, sets[loop.index0])) -%}
        {%- else -%}
            {%- do flags.append(dbt_studio._cond(c, ctx, scope)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(flags) }}
{% endmacro %}
