{#-
    A related or event model with the columns of the model on the one side of a relationship merged onto it
    (Customer Studio's "merge columns"): the model's rows, unchanged in number, plus `<relationship>__<column>`
    for each merged column.

        -- models/purchases_with_user.sql
        {{ dbt_studio.merged_columns('stg_purchases') }}

    Which columns: every relationship of the model with `merge_columns: true` (all documented columns of the
    other model) or `merge_columns: [col, ...]`. Merging follows the cardinality: either way for 1:1, from the one
    side onto the many side for many:1; a merge declared on the one side of 1:many fails naming the model.
    `relationships` restricts the merge to some relationship names.
-#}
{% macro merged_columns(model_name, relationships=none) %}
    {{ return(adapter.dispatch('merged_columns', 'dbt_studio')(model_name, relationships)) }}
{% endmacro %}

{% macro default__merged_columns(model_name, relationships) %}
    {%- do ref(model_name) -%}
    {%- if not execute -%}{{ return('select 1 as _parse_only') }}{%- endif -%}
    {%- set schema = dbt_studio._schema() -%}
    {%- set base = schema.models.get(model_name) -%}
    {%- if base is none -%}
        {{ exceptions.raise_compiler_error("dbt_studio: merged_columns: unknown model '" ~ model_name ~ "'") }}
    {%- endif -%}
    {%- set joins = [] -%}
    {%- set selects = ['m.*'] -%}
    {%- for rel in base.relationships.values() if rel.merge_columns
                                                and (relationships is none or rel.name in relationships) -%}
        {%- set other = schema.models[rel.to] -%}
        {%- if other.unique_id not in model.depends_on.nodes -%}
            {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model.name ~ "': merged_columns reads '" ~ rel.to
                                               ~ "'; add -- depends_on: {{ ref('" ~ rel.to ~ "') }} to the model") }}
        {%- endif -%}
        {%- set cols = dbt_studio._model_columns(schema, rel.to) if rel.merge_columns is sameas true
                       else dbt_studio._as_list(rel.merge_columns) -%}
        {%- if cols | length == 0 -%}
            {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model_name ~ "': relationship '" ~ rel.name
                                               ~ "': merge_columns: true needs the columns of '" ~ rel.to
                                               ~ "' documented (or list them)") }}
        {%- endif -%}
        {%- set alias = 'r' ~ loop.index -%}
        {%- set on = [] -%}
        {%- for p in rel.pairs -%}{%- do on.append('m.' ~ p[0] ~ ' = ' ~ alias ~ '.' ~ p[1]) -%}{%- endfor -%}
        {%- do joins.append('left join ' ~ ref(rel.to) ~ ' as ' ~ alias ~ ' on ' ~ (on | join(' and '))) -%}
        {%- for c in cols -%}{%- do selects.append(alias ~ '.' ~ c ~ ' as ' ~ rel.name ~ '__' ~ c) -%}{%- endfor -%}
    {%- endfor -%}
    {%- if joins | length == 0 -%}
        {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model_name
                                           ~ "': no relationship with merge_columns to merge") }}
    {%- endif -%}
select {{ selects | join(',\n    ') }}
from {{ ref(model_name) }} as m
{%- for j in joins %}
{{ j }}
{%- endfor %}
{% endmacro %}
