{#-
    Field transforms of a sync's mappings, computed in the warehouse as the plan's tracked columns, so change
    capture compares the value that is sent (sync_runner/core/mapping.py parses and checks the specs).

    field: {value: constant} or {column: name, transform: [{name, arg}, ...]}, steps applied in order:
      trim, lower, upper         on the value as text
      email                      trim + lower-case (how Meta and Google normalise an email before hashing)
      phone                      E.164 ('+' and 8 to 15 digits; arg: the default country code for national
                                 numbers); a number with letters or the wrong length becomes null
      sha256                     lower-case hex SHA-256 of the text
      mask                       every character but the last `arg` (default 0) replaced with '*'
      cast                       string | integer | number | boolean | date | timestamp
      date_format                a date or timestamp as text, in a strftime format (%Y %y %m %d %H %M %S)
-#}
{% macro _sync_field_sql(field) -%}
    {%- if 'value' in field -%}
        {{- dbt_studio._sync_constant(field['value']) -}}
    {%- else -%}
        {%- set expr = [dbt_studio._sync_ident(field['column'])] -%}
        {%- for step in field['transform'] -%}
            {%- do expr.append(dbt_studio.sync_transform(expr[-1], step['name'], step['arg'])) -%}
        {%- endfor -%}
        {{- expr[-1] -}}
    {%- endif -%}
{%- endmacro %}

{#- A constant as a typed SQL literal (a null is a null string). -#}
{% macro _sync_constant(value) -%}
    {%- if value is none -%}
        cast(null as {{ dbt.type_string() }})
    {%- elif value is sameas true or value is sameas false -%}
        {{ 'true' if value else 'false' }}
    {%- elif value is number -%}
        {{ value }}
    {%- else -%}
        cast({{ dbt_studio.string_literal(value | string) }} as {{ dbt.type_string() }})
    {%- endif -%}
{%- endmacro %}

{% macro sync_transform(expr, name, arg=none) %}
    {{ return(adapter.dispatch('sync_transform', 'dbt_studio')(expr, name, arg)) }}
{% endmacro %}

{% macro default__sync_transform(expr, name, arg=none) -%}
    {%- set text = 'cast(' ~ expr ~ ' as ' ~ dbt.type_string() ~ ')' -%}
    {%- if name == 'trim' -%}
        trim({{ text }})
    {%- elif name == 'lower' -%}
        lower({{ text }})
    {%- elif name == 'upper' -%}
        upper({{ text }})
    {%- elif name == 'email' -%}
        lower(trim({{ text }}))
    {%- elif name == 'phone' -%}
        {{- dbt_studio._sync_phone(text, arg) -}}
    {%- elif name == 'sha256' -%}
        {{- dbt_studio.sync_sha256(text) -}}
    {%- elif name == 'mask' -%}
        {%- set keep = (arg or 0) | int -%}
        {%- if keep == 0 -%}
            repeat('*', length({{ text }}))
        {%- else -%}
            repeat('*', greatest(length({{ text }}) - {{ keep }}, 0)) || right({{ text }}, {{ keep }})
        {%- endif -%}
    {%- elif name == 'cast' -%}
        {%- set types = {'string': dbt.type_string(), 'integer': dbt.type_int(), 'number': dbt.type_float(),
                         'boolean': dbt.type_boolean(), 'date': 'date', 'timestamp': dbt.type_timestamp()} -%}
        cast({{ expr }} as {{ types[arg] }})
    {%- elif name == 'date_format' -%}
        {{- dbt_studio.sync_format_date(expr, arg) -}}
    {%- else -%}
        {{- exceptions.raise_compiler_error("unknown transform '" ~ name ~ "'") -}}
    {%- endif -%}
{%- endmacro %}

{#- E.164, as sync_runner/sync/destinations/_identifiers.py normalise_phone does for Meta and Google: '+' or '00'
    makes a number international ('(0)' after '+' is dropped), else its trunk zeros go and the default country
    code comes first; any letter, or other than 8 to 15 digits, makes it null. A letter is a character whose
    lower and upper case differ. -#}
{% macro _sync_phone(text, country=none) -%}
    {%- set t = 'trim(' ~ text ~ ')' -%}
    {%- set plus = dbt_studio.sync_digits_only("replace(" ~ t ~ ", '(0)', '')") -%}
    {%- set digits = dbt_studio.sync_digits_only(t) -%}
    {%- set national = (dbt_studio.string_literal(country | string) ~ ' || ' if country else '')
                       ~ "ltrim(" ~ digits ~ ", '0')" -%}
    {%- set e164 -%}
        ltrim(case when {{ t }} like '+%' then {{ plus }}
                   when {{ digits }} like '00%' then substr({{ digits }}, 3)
                   else {{ national }} end, '0')
    {%- endset -%}
    case when lower({{ t }}) <> upper({{ t }}) then null
         when length({{ e164 }}) between 8 and 15 then '+' || {{ e164 }}
    end
{%- endmacro %}

{#- Text with every character but the digits 0-9 removed. -#}
{% macro sync_digits_only(text) %}
    {{ return(adapter.dispatch('sync_digits_only', 'dbt_studio')(text)) }}
{% endmacro %}

{% macro default__sync_digits_only(text) -%}
    regexp_replace({{ text }}, '[^0-9]', '')
{%- endmacro %}

{#- DuckDB replaces only the first match unless told 'g'. -#}
{% macro duckdb__sync_digits_only(text) -%}
    regexp_replace({{ text }}, '[^0-9]', '', 'g')
{%- endmacro %}

{#- Lower-case hex SHA-256 of a text. -#}
{% macro sync_sha256(text) %}
    {{ return(adapter.dispatch('sync_sha256', 'dbt_studio')(text)) }}
{% endmacro %}

{% macro default__sync_sha256(text) -%}
    lower(sha2({{ text }}, 256))
{%- endmacro %}

{% macro duckdb__sync_sha256(text) -%}
    sha256({{ text }})
{%- endmacro %}

{#- A date or timestamp as text in a strftime format (%Y %y %m %d %H %M %S %%). -#}
{% macro sync_format_date(expr, format) %}
    {{ return(adapter.dispatch('sync_format_date', 'dbt_studio')(expr, format)) }}
{% endmacro %}

{#- TO_CHAR (Snowflake) of the value as a timestamp (a date is its midnight): each strftime code becomes its format
    element; letters between them are quoted, other characters (- / : . , and spaces) stay as they are. -#}
{% macro default__sync_format_date(expr, format) -%}
    {%- set codes = {'Y': 'YYYY', 'y': 'YY', 'm': 'MM', 'd': 'DD', 'H': 'HH24', 'M': 'MI', 'S': 'SS'} -%}
    {%- set parts = [] -%}
    {%- set state = {'escape': false} -%}
    {%- for ch in format -%}
        {%- if state.escape -%}
            {%- do parts.append(codes[ch] if ch in codes else ('"' ~ ch ~ '"' if ch.isalpha() else ch)) -%}
            {%- do state.update({'escape': false}) -%}
        {%- elif ch == '%' -%}
            {%- do state.update({'escape': true}) -%}
        {%- else -%}
            {%- do parts.append('"' ~ ch ~ '"' if ch.isalpha() else ch) -%}
        {%- endif -%}
    {%- endfor -%}
    to_char(cast({{ expr }} as {{ dbt.type_timestamp() }}), {{ dbt_studio.string_literal(parts | join('')) }})
{%- endmacro %}

{% macro duckdb__sync_format_date(expr, format) -%}
    strftime({{ expr }}, {{ dbt_studio.string_literal(format) }})
{%- endmacro %}
