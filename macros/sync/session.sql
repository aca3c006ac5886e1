{#-
    Settings of the sync runner's own warehouse session, undone when it closes.

    DuckDB lets one query use 80% of the machine's memory by default, and a sync's planning query (a sort of the
    whole model by key) takes what it is given: a 10M-row sync peaked at 4 GB. The runner caps it at
    `dbt_studio_sync_duckdb_memory_limit` (default 512MB; DuckDB spills the rest to disk) unless the profile sets
    `memory_limit` itself. Set the var to '' to keep DuckDB's default.
-#}
{% macro sync_session_start() %}
    {{ return(adapter.dispatch('sync_session_start', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__sync_session_start() %}
    {{ return(none) }}
{% endmacro %}

{#- Returns whether a setting was changed (so sync_session_end resets it). -#}
{% macro duckdb__sync_session_start() %}
    {%- set statements = dbt_studio.sync_session_sql() -%}
    {%- for sql in statements -%}{%- do run_query(sql) -%}{%- endfor -%}
    {{ return(statements | length > 0) }}
{% endmacro %}

{#- The statements of sync_session_start, for a runner that opens its own connection (and closes it after). -#}
{% macro sync_session_sql() %}
    {{ return(adapter.dispatch('sync_session_sql', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__sync_session_sql() %}
    {{ return([]) }}
{% endmacro %}

{% macro duckdb__sync_session_sql() %}
    {%- set limit = dbt_studio.setting('sync_duckdb_memory_limit') -%}
    {%- if not limit or 'memory_limit' in (target.get('settings') or {}) -%}
        {{ return([]) }}
    {%- endif -%}
    {{ return(['set memory_limit = ' ~ dbt_studio.string_literal(limit)]) }}
{% endmacro %}

{% macro sync_session_end(changed) %}
    {{ return(adapter.dispatch('sync_session_end', 'dbt_studio')(changed)) }}
{% endmacro %}

{% macro default__sync_session_end(changed) %}
    {{ return(none) }}
{% endmacro %}

{% macro duckdb__sync_session_end(changed) %}
    {%- if changed -%}
        {%- do run_query('reset memory_limit') -%}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}
