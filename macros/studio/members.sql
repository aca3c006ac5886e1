{#-
    A preview of a draft audience's members: the parent's primary key and labels of the first `limit` members
    (ordered by primary key), straight from the tree (the audience need not be built). Returns SQL.
-#}
{% macro studio_members_sql(nodes, spec, limit=10) %}
    {{ return(adapter.dispatch('studio_members_sql', 'dbt_studio')(nodes, spec, limit)) }}
{% endmacro %}

{% macro default__studio_members_sql(nodes, spec, limit) %}
    {%- set schema = dbt_studio._schema(nodes) -%}
    {%- do dbt_studio._studio_ctx(schema, spec) -%}
    {%- set parent = schema.models[spec.parent] -%}
    {%- set shown = [] -%}
    {%- for c in parent.primary_key + parent.labels if c not in shown -%}{%- do shown.append(c) -%}{%- endfor -%}
    {%- set selects = [] -%}
    {%- for c in shown -%}{%- do selects.append('p.' ~ c) -%}{%- endfor -%}
    {%- set draft = {'parent': spec.parent, 'where': spec.get('where'), 'columns': shown, 'traits': [],
                     'splits': none, 'as_of': spec.get('as_of')} -%}
    {%- set inner = dbt_studio._audience_sql(schema, spec.get('name') or 'studio draft', draft, 'preview',
                                              spec.get('as_of'), selects) -%}
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
