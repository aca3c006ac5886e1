{#- Column names of a relation (lower-cased unless `lower` is false: then as the warehouse stores them, which is
    how the sync macros quote them), so the runner can check mappings before planning. -#}
{% macro relation_columns(relation, lower=true) %}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') -%}
    {{ return((columns | map('lower') if lower else columns) | list) }}
{% endmacro %}
