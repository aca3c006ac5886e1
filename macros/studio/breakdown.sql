{#-
    Members of a draft audience broken down by one column, against the whole parent: `value` (as text),
    `parent_rows`, `members`, the `limit` values with most members. `column` is a column of the parent or a merged
    column `<relationship>__<column>` of a many:1 / 1:1 relationship of the parent that declares merge_columns:
    when the model on the one side has more than one row for a join key (the data contradicts the cardinality,
    and the join would count parent rows more than once) it fails naming the relationship, model and key, as
    `merged_columns` does. `sets`: the kept condition sets of the top-level conditions (see studio_funnel_sql).
    Returns SQL.
-#}
{% macro studio_breakdown_sql(nodes, spec, column, limit=20, sets=none, disabled=none) %}
    {{ return(adapter.dispatch('studio_breakdown_sql', 'dbt_studio')(nodes, spec, column, limit, sets, disabled)) }}
{% endmacro %}

{% macro default__studio_breakdown_sql(nodes, spec, column, limit, sets, disabled) %}
    {%- set schema = dbt_studio._schema(nodes, disabled=disabled) -%}
    {%- set ctx = dbt_studio._studio_ctx(schema, spec) -%}
    {%- set parent = schema.models[spec.parent] -%}
    {%- set scope = {'alias': 'p', 'model': spec.parent, 'joins': []} -%}
    {%- set merged = dbt_studio._studio_merged_join(schema, parent, column) -%}
    {%- if merged is none -%}
        {%- do dbt_studio._check_column(ctx, spec.parent, column) -%}
        {%- set expr = 'p.' ~ column -%}
    {%- else -%}
        {%- set repeat = dbt_studio._merge_key_repeat(merged.rel, schema.models[merged.rel.to].relation) -%}
        {%- if repeat is not none -%}
            {{ exceptions.raise_compiler_error("dbt_studio: breakdown by '" ~ column ~ "': model '" ~ spec.parent
                                               ~ "': " ~ repeat ~ ": the data contradicts the declared cardinality,"
                                               ~ " so the breakdown would count rows of '" ~ spec.parent
                                               ~ "' more than once; fix the cardinality or the data") }}
        {%- endif -%}
        {%- set expr = merged.expr -%}
        {%- do scope.joins.append(merged.join) -%}
    {%- endif -%}
    {%- set flags = dbt_studio._studio_flags(spec, ctx, scope, parent, sets) -%}
    {%- set member = '(' ~ (flags | join(') and (')) ~ ')' if flags else 'true' -%}
    {%- set sql -%}
{{ dbt_studio._studio_with(ctx) }}
select cast(v as {{ dbt.type_string() }}) as value, count(*) as parent_rows,
    sum(case when member then 1 else 0 end) as members
from (
    select {{ expr }} as v, ({{ member }}) as member
    from {{ parent.relation }} as p
    {%- for j in scope.joins %}
    {{ j }}
    {%- endfor %}
) as rows_
group by v
order by members desc, parent_rows desc, 1
limit {{ limit | int }}
    {%- endset -%}
    {{ return(sql | trim) }}
{% endmacro %}

{#- {expr, join, rel} of a merged column `<relationship>__<column>` of the parent, or none for a plain column. -#}
{% macro _studio_merged_join(schema, parent, column) %}
    {%- for rel in parent.relationships.values()
        if rel.merge_columns and rel.cardinality in ('1:1', 'many:1') and column.startswith(rel.name ~ '__') -%}
        {%- set other = schema.models[rel.to] -%}
        {%- set name = column[rel.name | length + 2:] -%}
        {%- set allowed = other.columns if rel.merge_columns is sameas true
            else dbt_studio._as_list(rel.merge_columns) -%}
        {%- if name in allowed -%}
            {%- set on = [] -%}
            {%- for p in rel.pairs -%}{%- do on.append('p.' ~ p[0] ~ ' = mc.' ~ p[1]) -%}{%- endfor -%}
            {%- set join = 'left join ' ~ other.relation ~ ' as mc on ' ~ (on | join(' and ')) -%}
            {{ return({'expr': 'mc.' ~ name, 'join': join, 'rel': rel}) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{% endmacro %}
