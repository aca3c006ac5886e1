{#-
    A priority list: the members of several audiences, each in the first audience (in the order given) that holds
    them, so a person gets one campaign, offer or segment only.

        {{ dbt_studio.priority_list(['vip_customers', 'lapsed_buyers', 'newsletter_only']) }}

    One row per member: the columns every listed audience has (in the first audience's order; `columns` names them
    instead), `audience` (the name of the audience the member belongs to; `audience_column` renames it) and
    `audience_priority` (its 1-based position in the list). Members are matched by `key`, by default the primary
    key of the audiences' parent model. The result is a model like any audience: it can carry syncs.
-#}
{% macro priority_list(audiences, key=none, columns=none, audience_column='audience') %}
    {{ return(adapter.dispatch('priority_list', 'dbt_studio')(audiences, key, columns, audience_column)) }}
{% endmacro %}

{% macro default__priority_list(audiences, key, columns, audience_column) %}
    {%- if audiences is string or audiences | length == 0 -%}
        {{ dbt_studio._priority_error("needs a list of audience model names") }}
    {%- endif -%}
    {%- for name in audiences -%}
        {%- do ref(name) -%}
    {%- endfor -%}
    {%- if not execute -%}
        {{ return('select 1 as _parse_only') }}
    {%- endif -%}
    {%- set keys = dbt_studio._as_list(key) if key else dbt_studio._priority_key(audiences) -%}
    {%- set shared = [] -%}
    {%- for name in audiences -%}
        {%- set have = adapter.get_columns_in_relation(ref(name)) | map(attribute='name') | map('lower') | list -%}
        {%- for k in keys if k | lower not in have -%}
            {{ dbt_studio._priority_error("audience '" ~ name ~ "' has no column '" ~ k ~ "' (the key)") }}
        {%- endfor -%}
        {%- if loop.first -%}
            {%- do shared.extend(have if columns is none else columns | map('lower') | list) -%}
        {%- endif -%}
        {%- for c in shared | list if c not in have -%}
            {%- if columns is none -%}
                {%- do shared.remove(c) -%}
            {%- else -%}
                {{ dbt_studio._priority_error("audience '" ~ name ~ "' has no column '" ~ c ~ "'") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set keys = keys | map('lower') | list -%}
    {%- set carried = keys + (shared | reject('in', keys) | reject('in', [audience_column, 'audience_priority'])
                              | list) -%}
with members as (
    {%- for name in audiences %}
    select {{ carried | join(', ') }}, {{ dbt_studio.string_literal(name) }} as {{ audience_column }},
        {{ loop.index }} as audience_priority
    from {{ ref(name) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),
ranked as (
    select members.*,
        row_number() over (partition by {{ keys | join(', ') }} order by audience_priority) as _priority_rank
    from members
)
select {{ carried | join(', ') }}, {{ audience_column }}, audience_priority
from ranked
where _priority_rank = 1
{% endmacro %}

{#- The primary key of the listed audiences' parent model (they must share it). -#}
{% macro _priority_key(audiences) %}
    {%- set schema = dbt_studio._schema() -%}
    {%- set found = [] -%}
    {%- for name in audiences -%}
        {%- set node = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
                       | selectattr('name', 'equalto', name) | first -%}
        {%- set spec = (node.config.meta or {}).get('dbt_studio_audience') if node else none -%}
        {%- set own = ((node.config.meta or {}).get('dbt_studio') or {}).get('primary_key') if node else none -%}
        {%- set parent = schema.models.get(spec.parent) if spec else none -%}
        {%- set pk = dbt_studio._as_list(own) if own else (parent.primary_key if parent else []) -%}
        {%- if not pk -%}
            {{ dbt_studio._priority_error("'" ~ name ~ "' is not an audience (dbt_studio.audience) and declares no "
                                          ~ "primary_key: pass key=") }}
        {%- endif -%}
        {%- if found and (pk | map('lower') | list) != (found[0] | map('lower') | list) -%}
            {{ dbt_studio._priority_error("audiences have different keys (" ~ found[0] | join(', ') ~ " and "
                                          ~ pk | join(', ') ~ "): pass key=") }}
        {%- endif -%}
        {%- do found.append(pk) -%}
    {%- endfor -%}
    {{ return(found[0]) }}
{% endmacro %}

{% macro _priority_error(msg) %}
    {{ exceptions.raise_compiler_error("dbt_studio: priority list '" ~ model.name ~ "': " ~ msg) }}
{% endmacro %}
