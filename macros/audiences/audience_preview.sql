{#-
    Insights for `dbt-studio audience preview`: the audience's size after each top-level condition (cumulative:
    condition 1, then 1 and 2, ...) computed in one pass over the parent, and a few members with their labels.

    Called from Python with the schema read from manifest.json (`nodes`: the shape `_schema_nodes()` builds),
    so it needs no graph: returns {'total', 'sizes', 'labels', 'members', 'split_sizes'}. `disabled`: what to say
    of a disabled model the audience names (see `_unknown_model`).
-#}
{% macro audience_preview(nodes, name, limit=5, disabled=none) %}
    {{ return(adapter.dispatch('audience_preview', 'dbt_studio')(nodes, name, limit, disabled)) }}
{% endmacro %}

{% macro default__audience_preview(nodes, name, limit, disabled=none) %}
    {%- set schema = dbt_studio._schema(nodes, disabled=disabled) -%}
    {%- set node = schema.models.get(name) -%}
    {%- if node is none or node.audience is none -%}
        {{ exceptions.raise_compiler_error("dbt_studio: '" ~ name
                                           ~ "' is not an audience model (its SQL must call dbt_studio.audience)") }}
    {%- endif -%}
    {%- set spec = node.audience -%}
    {%- do dbt_studio._check_audience_keys(name, spec) -%}
    {%- do dbt_studio._check_audience_references(schema, name, spec) -%}
    {%- set where = spec.where -%}
    {%- if where is none -%}
        {%- set conditions = [] -%}
    {%- elif where is mapping and where.keys() | list == ['and'] -%}
        {%- set conditions = where['and'] -%}
    {%- else -%}
        {%- set conditions = [where] -%}
    {%- endif -%}
    {%- set ctx = {'schema': schema, 'mode': 'preview', 'name': name, 'as_of': dbt_studio._as_of_sql(spec.get('as_of')),
                   'ctes': [], 'n': []} -%}
    {%- set parent = schema.models[spec.parent] -%}
    {%- set scope = {'alias': 'p', 'model': spec.parent, 'joins': []} -%}
    {%- set sums = ['count(*) as n0'] -%}
    {%- set so_far = [] -%}
    {%- for c in conditions -%}
        {%- do so_far.append('(' ~ dbt_studio._cond(c, ctx, scope) ~ ')') -%}
        {%- do sums.append('sum(case when ' ~ (so_far | join(' and ')) ~ ' then 1 else 0 end) as n' ~ loop.index) -%}
    {%- endfor -%}
    {%- set query -%}
{%- if ctx.ctes %}
with {{ ctx.ctes | join(',\n') }}
{%- endif %}
select {{ sums | join(',\n    ') }}
from {{ parent.relation }} as p
{%- for j in scope.joins %}
{{ j }}
{%- endfor %}
    {%- endset -%}
    {%- set counts = run_query(query).rows[0] | list -%}
    {%- set shown = [] -%}
    {%- for c in parent.primary_key + parent.labels if c not in shown -%}{%- do shown.append(c) -%}{%- endfor -%}
    {%- set members_query -%}
select {{ shown | join(', ') }}
from {{ node.relation }}
order by {{ parent.primary_key | join(', ') }}
limit {{ limit | int }}
    {%- endset -%}
    {%- set members = [] -%}
    {%- for row in run_query(members_query).rows -%}
        {%- do members.append(row | list) -%}
    {%- endfor -%}
    {%- set split_sizes = [] -%}
    {%- if spec.splits -%}
        {%- set split_query -%}
select {{ spec.splits.get('column') or 'split_group' }} as split_group, count(*) as members
from {{ node.relation }}
group by 1
order by 1
        {%- endset -%}
        {%- for row in run_query(split_query).rows -%}
            {%- do split_sizes.append(row | list) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set sizes = [] -%}
    {%- for v in counts[1:] -%}{%- do sizes.append((v or 0) | int) -%}{%- endfor -%}
    {{ return({'total': counts[0] | int, 'sizes': sizes, 'labels': shown, 'members': members,
               'split_sizes': split_sizes}) }}
{% endmacro %}
