{#-
    A preview of a draft audience's members: the parent's primary key and labels of the first `limit` members
    (ordered by primary key), straight from the tree (the audience need not be built), or from the kept condition
    sets of its top-level conditions (`sets`, see studio_funnel_sql). Returns SQL.
-#}
{% macro studio_members_sql(nodes, spec, limit=10, sets=none, disabled=none) %}
    {{ return(adapter.dispatch('studio_members_sql', 'dbt_studio')(nodes, spec, limit, sets, disabled)) }}
{% endmacro %}

{% macro default__studio_members_sql(nodes, spec, limit, sets, disabled) %}
    {%- set schema = dbt_studio._schema(nodes, disabled=disabled) -%}
    {%- set ctx = dbt_studio._studio_ctx(schema, spec) -%}
    {%- set parent = schema.models[spec.parent] -%}
    {%- set shown = [] -%}
    {%- for c in parent.primary_key + parent.labels if c not in shown -%}{%- do shown.append(c) -%}{%- endfor -%}
    {%- set selects = [] -%}
    {%- for c in shown -%}{%- do selects.append('p.' ~ c) -%}{%- endfor -%}
    {%- if sets is not none -%}
        {%- set scope = {'alias': 'p', 'model': spec.parent, 'joins': []} -%}
        {%- set flags = dbt_studio._studio_flags(spec, ctx, scope, parent, sets) -%}
        {%- set inner -%}
select {{ selects | join(', ') }}
from {{ parent.relation }} as p
{%- if flags %}
where ({{ flags | join(') and (') }})
{%- endif %}
        {%- endset -%}
    {%- else -%}
        {%- set draft = {'parent': spec.parent, 'where': spec.get('where'), 'columns': shown, 'traits': [],
                         'splits': none, 'as_of': spec.get('as_of')} -%}
        {%- set inner = dbt_studio._audience_sql(schema, spec.get('name') or 'studio draft', draft, 'preview',
                                                  spec.get('as_of'), selects) -%}
    {%- endif -%}
    {%- set sql -%}
select {{ shown | join(', ') }}
from (
{{ inner | trim }}
) as members
order by {{ parent.primary_key | join(', ') }}
limit {{ limit | int }}
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}
