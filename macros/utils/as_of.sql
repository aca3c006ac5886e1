{#-
    The one `as_of` rule of features and audiences: the moment windows and relative dates count back from.

    The macro's `as_of` argument, else the `dbt_studio_as_of` var (the `as_of` setting), else the current
    timestamp. A date or date-time string ('2026-01-01', '2026-01-01 12:00:00') is a literal cast to a
    timestamp; any other string is a SQL expression (e.g. `dateadd(day, -1, current_date)`).
-#}
{% macro _as_of_sql(as_of=none) %}
    {%- set value = as_of if as_of is not none and as_of != '' else dbt_studio.setting('as_of') -%}
    {%- set ts = dbt.type_timestamp() -%}
    {%- if value is none or value == '' -%}
        {{ return('cast(' ~ dbt.current_timestamp() | trim ~ ' as ' ~ ts ~ ')') }}
    {%- elif modules.re.match('^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$', value | string) -%}
        {{ return('cast(' ~ dbt_studio.string_literal(value | string) ~ ' as ' ~ ts ~ ')') }}
    {%- else -%}
        {{ return('cast(' ~ value ~ ' as ' ~ ts ~ ')') }}
    {%- endif -%}
{% endmacro %}
