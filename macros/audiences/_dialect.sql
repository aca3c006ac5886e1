{#- Dialect helpers of the audience compiler. -#}

{#- `ts` minus `days` days. -#}
{% macro _days_before(ts, days) %}
    {{ return(adapter.dispatch('_days_before', 'dbt_studio')(ts, days)) }}
{% endmacro %}

{% macro default___days_before(ts, days) -%}
    dateadd(day, {{ -1 * (days | int) }}, {{ ts }})
{%- endmacro %}

{% macro duckdb___days_before(ts, days) -%}
    ({{ ts }} - interval ({{ days | int }}) day)
{%- endmacro %}

{#- A bucket 0..9999 from a string expression (splits): the first 7 hex digits of its md5 (268M values, so the
    modulo is unbiased), modulo 10000. The same on every warehouse and stable across versions, so a member keeps
    its group when a project moves from DuckDB to Snowflake; it avoids Snowflake's HASH, which fakesnow cannot run
    faithfully. -#}
{% macro _hash_bucket(expr) %}
    {{ return(adapter.dispatch('_hash_bucket', 'dbt_studio')(expr)) }}
{% endmacro %}

{% macro default___hash_bucket(expr) -%}
    {%- set digest = 'md5(' ~ expr ~ ')' -%}
    {%- set digits = [] -%}
    {%- for i in range(7) -%}
        {%- do digits.append("(position(substr(" ~ digest ~ ", " ~ (i + 1) ~ ", 1) in '0123456789abcdef') - 1) * "
                             ~ (16 ** (6 - i))) -%}
    {%- endfor -%}
    mod({{ digits | join(' + ') }}, 10000)
{%- endmacro %}

{#- DuckDB reads the hex digits with a cast (same value as the default). -#}
{% macro duckdb___hash_bucket(expr) -%}
    (cast('0x' || substr(md5({{ expr }}), 1, 7) as integer) % 10000)
{%- endmacro %}
