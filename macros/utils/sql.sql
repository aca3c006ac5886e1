{#- Small dialect helpers shared by every capability. -#}

{#- True when `pattern` matches anywhere in `expr` (anchor it with ^ and $ for a whole-value match).
    Snowflake's REGEXP_LIKE matches the whole value only, so Snowflake searches with REGEXP_INSTR. -#}
{% macro regex_search(expr, pattern) %}
    {{ return(adapter.dispatch('regex_search', 'dbt_studio')(expr, pattern)) }}
{% endmacro %}

{% macro default__regex_search(expr, pattern) -%}
    regexp_like({{ expr }}, {{ dbt_studio.string_literal(pattern) }})
{%- endmacro %}

{% macro duckdb__regex_search(expr, pattern) -%}
    regexp_matches({{ expr }}, {{ dbt_studio.string_literal(pattern) }})
{%- endmacro %}

{% macro snowflake__regex_search(expr, pattern) -%}
    regexp_instr({{ expr }}, {{ dbt_studio.string_literal(pattern) }}) > 0
{%- endmacro %}

{#- A SQL string literal with quotes (and, on Snowflake, backslashes) escaped. -#}
{% macro string_literal(value) %}
    {{ return(adapter.dispatch('string_literal', 'dbt_studio')(value)) }}
{% endmacro %}

{% macro default__string_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro snowflake__string_literal(value) -%}
    '{{ value | string | replace("\\", "\\\\") | replace("'", "''") }}'
{%- endmacro %}
