{#-
    One page of the plan as JSON records, for a destination that sends each record as the JSON object of its
    mapped fields and nothing else (`http` with its default body). The warehouse writes the text, so no value is
    converted one by one in Python: at 200k rows that conversion was most of a sync's time.

    `fields` are [destination field, plan column, kind, is_key], in the mapping's order. The kind says how a value
    is written, each exactly as the runner writes it from Arrow (sync/delivery.py, `_python_values`):

      value      as it is (integers, booleans)
      text       as a JSON string
      float      a double; NaN and infinities as null (JSON has no word for them, most APIs refuse them)
      timestamp  ISO 8601 text with microseconds (2024-06-01T08:30:00.000000), no time zone
      date       ISO 8601 text (2024-06-01)

    Each record comes as its UTF-8 bytes (a BLOB: `encode`), which the runner joins into a request's body as they
    are: the driver hands bytes over without decoding them into text (9,000 records of 1 KB: 5 ms against 12 ms).
    A clear carries only the fields mapped from the primary key, the others null. Returns none on an adapter
    without this path: the runner then converts the rows itself. The bounds are numbers or bind parameters, as
    in sync_plan_rows_sql.
-#}
{% macro sync_plan_records_sql(sync, fields, first_seq, last_seq) %}
    {{ return(adapter.dispatch('sync_plan_records_sql', 'dbt_studio')(sync, fields, first_seq, last_seq)) }}
{% endmacro %}

{% macro default__sync_plan_records_sql(sync, fields, first_seq, last_seq) %}
    {{ return(none) }}
{% endmacro %}

{% macro duckdb__sync_plan_records_sql(sync, fields, first_seq, last_seq) %}
    {%- set plan = dbt_studio._state_relation(sync, sync.name ~ '__plan') -%}
    {%- set first = first_seq if first_seq is string else first_seq | int -%}
    {%- set last = last_seq if last_seq is string else last_seq | int -%}
    {%- set pairs = [] -%}
    {%- for dest, column, kind, is_key in fields -%}
        {%- set value = dbt_studio._duckdb_json_value(dbt_studio._sync_ident(column), kind) -%}
        {%- if not is_key -%}
            {%- set value = "case when _op <> 'clear' then " ~ value ~ " end" -%}
        {%- endif -%}
        {%- do pairs.append(dbt_studio.string_literal(dest) ~ ', ' ~ value) -%}
    {%- endfor -%}
    {%- set object = ('cast(json_object(' ~ pairs | join(', ') ~ ') as varchar)') if pairs else "'{}'" -%}
    {%- set record = 'encode(' ~ object ~ ')' -%}
    {{ return('select _seq, _op, _key, ' ~ record ~ ' as _json_record from ' ~ plan
              ~ ' where _seq between ' ~ first ~ ' and ' ~ last ~ ' order by _seq') }}
{% endmacro %}

{#- A value of one kind (above) as DuckDB's json_object writes what the runner would. -#}
{% macro _duckdb_json_value(expr, kind) -%}
    {%- if kind == 'float' -%}
        case when isnan({{ expr }}) or isinf({{ expr }}) then null else {{ expr }} end
    {%- elif kind == 'timestamp' -%}
        strftime({{ expr }}, '%Y-%m-%dT%H:%M:%S.%f')
    {%- elif kind in ('text', 'date') -%}
        cast({{ expr }} as varchar)
    {%- elif kind == 'value' -%}
        {{ expr }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("sync_plan_records_sql: unknown kind '" ~ kind ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{#-
    The kind (above) sync_plan_records_sql writes a plan column of each of `data_types` as, or none for a type it
    does not write as the runner would (the runner then converts the rows itself). The types are the
    warehouse's names as the plan stores them (DESCRIBE's, information_schema's); each kind is the one the runner
    gives the Arrow type the warehouse hands such a column over as, so that the records read the same whether
    the runner reads a page as rows or as Arrow (sync/delivery.py). A JSON or UUID value comes as text.
-#}
{% macro sync_json_kinds(data_types) %}
    {{ return(adapter.dispatch('sync_json_kinds', 'dbt_studio')(data_types)) }}
{% endmacro %}

{% macro default__sync_json_kinds(data_types) %}
    {{ return([none] * (data_types | length)) }}
{% endmacro %}

{% macro duckdb__sync_json_kinds(data_types) %}
    {%- set kinds = {'TINYINT': 'value', 'SMALLINT': 'value', 'INTEGER': 'value', 'BIGINT': 'value',
                     'UTINYINT': 'value', 'USMALLINT': 'value', 'UINTEGER': 'value', 'UBIGINT': 'value',
                     'BOOLEAN': 'value', 'VARCHAR': 'text', 'JSON': 'text', 'UUID': 'text', 'DOUBLE': 'float',
                     'TIMESTAMP': 'timestamp', 'DATE': 'date'} -%}
    {%- set out = [] -%}
    {%- for data_type in data_types -%}
        {%- do out.append(kinds.get(data_type | string | trim | upper)) -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}
