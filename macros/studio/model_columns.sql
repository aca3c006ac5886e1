{#-
    The columns of every model's relation, as the audience compiler reads them (`_model_columns`: the relation's
    columns, lower-case, or [] when it is not built): {model name: [column, ...]}. The studio asks once per build
    and passes each list back in its node as `actual`, so that compiling a question asks the warehouse nothing
    (without them every compile read the columns of each model it touched: two metadata queries a model).
-#}
{% macro studio_model_columns(nodes, disabled=none) %}
    {{ return(adapter.dispatch('studio_model_columns', 'dbt_studio')(nodes, disabled)) }}
{% endmacro %}

{% macro default__studio_model_columns(nodes, disabled) %}
    {%- set schema = dbt_studio._schema(nodes, disabled=disabled) -%}
    {%- set out = {} -%}
    {%- for name, m in schema.models.items() -%}
        {%- do dbt_studio._model_columns(schema, name) -%}
        {%- do out.update({name: m.actual | list}) -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}
