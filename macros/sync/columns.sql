{#- Column names of a relation, lower-cased, so the runner can check mappings before planning. -#}
{% macro relation_columns(relation) %}
    {%- set columns = adapter.get_columns_in_relation(relation) -%}
    {{ return(columns | map(attribute='name') | map('lower') | list) }}
{% endmacro %}
