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

{#- Returns whether sync_session_end has anything to undo. -#}
{% macro duckdb__sync_session_start() %}
    {%- for sql in dbt_studio.sync_session_sql() -%}{%- do run_query(sql) -%}{%- endfor -%}
    {{ return(dbt_studio.sync_session_end_sql() | length > 0) }}
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

{#- How the runner's own connection fits its session to one sync's model (`materialized` as dbt builds it),
    before the sync reads it: none where there is nothing to fit, else {'count': a query of the model's rows,
    'up_to': the most rows of a small model, 'small': the statements for a small model, 'other': those for a
    larger one}. A model that is not stored as a table (a view) is not counted: counting would run its query.

    DuckDB shares a query's work between its threads by row group (122,880 rows): a model of one row group or
    fewer is read, sorted and planned by one thread whatever the setting, and every other thread only costs the
    hand-offs between them (a 10k-row sync took 157 ms on one thread against 167 ms on two, a median of eleven
    runs each on two cores). Unless the profile sets `threads`, such a model's sync runs on one thread; a larger
    one's on DuckDB's default (the statements of each sync set it again; sync_session_end_sql resets it). -#}
{% macro sync_model_session_sql(source, materialized) %}
    {{ return(adapter.dispatch('sync_model_session_sql', 'dbt_studio')(source, materialized)) }}
{% endmacro %}

{% macro default__sync_model_session_sql(source, materialized) %}
    {{ return(none) }}
{% endmacro %}

{% macro duckdb__sync_model_session_sql(source, materialized) %}
    {%- set stored = ['table', 'incremental', 'seed', 'snapshot', 'id_stitcher'] -%}
    {%- if 'threads' in (target.get('settings') or {}) or materialized not in stored -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return({'count': 'select count(*) from ' ~ source, 'up_to': 122880, 'small': ['set threads = 1'],
               'other': ['reset threads']}) }}
{% endmacro %}

{% macro sync_session_end(changed) %}
    {{ return(adapter.dispatch('sync_session_end', 'dbt_studio')(changed)) }}
{% endmacro %}

{% macro default__sync_session_end(changed) %}
    {{ return(none) }}
{% endmacro %}

{#- `changed`: what sync_session_start returned (nothing to undo when false). -#}
{% macro duckdb__sync_session_end(changed) %}
    {%- if changed -%}
        {%- for sql in dbt_studio.sync_session_end_sql() -%}{%- do run_query(sql) -%}{%- endfor -%}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}

{#- The statements of sync_session_end, for a runner that opens its own connection: run before it closes it.

    DuckDB's settings belong to the database, not the connection: a connection to the same file in the same
    process (dbt-duckdb's, which stays open between dbt invocations in `serve`, the studio or `dbt-studio build`)
    shares them, and closing the runner's connection undoes nothing while that one lives. Besides the memory cap,
    a plan write sets `force_compression` (sync_plan_write_sql) and resets it right after; a write that failed in
    between left it set, so it is reset here too (unless the profile sets it), and so are the threads a sync's
    model set (sync_model_session_sql). -#}
{% macro sync_session_end_sql() %}
    {{ return(adapter.dispatch('sync_session_end_sql', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__sync_session_end_sql() %}
    {{ return([]) }}
{% endmacro %}

{% macro duckdb__sync_session_end_sql() %}
    {%- set statements = [] -%}
    {%- if dbt_studio.sync_session_sql() | length > 0 -%}
        {%- do statements.append('reset memory_limit') -%}
    {%- endif -%}
    {%- if 'force_compression' not in (target.get('settings') or {}) -%}
        {%- do statements.append('reset force_compression') -%}
    {%- endif -%}
    {%- if 'threads' not in (target.get('settings') or {}) -%}
        {%- do statements.append('reset threads') -%}
    {%- endif -%}
    {{ return(statements) }}
{% endmacro %}
