{#-
    Overlap of audiences over one parent: `trees` is a list of condition trees (a draft's `where`, or
    {'in audience': name} for a built audience); the query returns `n0` (the parent's rows) and `o<i>_<j>`
    (i <= j, 1-based): the rows in both audience i and audience j (`o<i>_<i>` is audience i's size). Returns SQL.
-#}
{% macro studio_overlap_sql(nodes, parent, trees, as_of=none, disabled=none) %}
    {{ return(adapter.dispatch('studio_overlap_sql', 'dbt_studio')(nodes, parent, trees, as_of, disabled)) }}
{% endmacro %}

{% macro default__studio_overlap_sql(nodes, parent, trees, as_of, disabled) %}
    {%- set schema = dbt_studio._schema(nodes, disabled=disabled) -%}
    {%- set ctx = dbt_studio._studio_ctx(schema, {'parent': parent, 'as_of': as_of, 'name': 'overlap'}) -%}
    {%- set scope = {'alias': 'p', 'model': parent, 'joins': []} -%}
    {%- set flags = [] -%}
    {%- for tree in trees -%}
        {%- set predicate = 'true' if tree is none else dbt_studio._cond(tree, ctx, scope) -%}
        {%- do flags.append('case when ' ~ predicate ~ ' then 1 else 0 end as f' ~ loop.index) -%}
    {%- endfor -%}
    {%- set sums = ['count(*) as n0'] -%}
    {%- for i in range(1, trees | length + 1) -%}
        {%- for j in range(i, trees | length + 1) -%}
            {%- set both = 'f' ~ i if i == j else 'f' ~ i ~ ' * f' ~ j -%}
            {%- do sums.append('sum(' ~ both ~ ') as o' ~ i ~ '_' ~ j) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set sql -%}
{{ dbt_studio._studio_with(ctx) }}
select {{ sums | join(',\n    ') }}
from (
    select {{ flags | join(',\n        ') }}
    from {{ schema.models[parent].relation }} as p
    {%- for j in scope.joins %}
    {{ j }}
    {%- endfor %}
) as flags
    {%- endset -%}
    {{ return(sql | trim) }}
{% endmacro %}
