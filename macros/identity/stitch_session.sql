{#-
    Warehouse settings held while an id_stitcher model builds, undone when it ends.

    DuckDB lets a query use 80% of the machine's memory by default, and the stitcher's first rounds (aggregates
    and joins over every identifier and link) take what they are given. `dbt_studio_stitch_duckdb_memory_limit`
    (a size like '4GB' or a share of the machine's memory like '40%'; '' leaves DuckDB's own limit) caps DuckDB's
    memory for every build: what does not fit spills to DuckDB's temp directory. Unset, a full build is capped at
    40% and an incremental run is not: at 10M persons an uncapped full build took 13.7 GB where scipy took 7.3
    (40%: 10.3 GB, as fast), while under a cap an incremental run that reads every row spills its comparison with
    the existing graph and costs as much as a full build (docs/identity.md). It is a setting of the whole DuckDB
    database, set before the build's first statement and reset after its last; a `memory_limit` in the
    profile's `settings` wins (nothing is changed). Returns whether the setting was changed (stitch_session_end
    resets it then).
-#}
{% macro stitch_session_start(model_name, incremental=false) %}
    {{ return(adapter.dispatch('stitch_session_start', 'dbt_studio')(model_name, incremental)) }}
{% endmacro %}

{% macro default__stitch_session_start(model_name, incremental=false) %}
    {{ return(false) }}
{% endmacro %}

{% macro duckdb__stitch_session_start(model_name, incremental=false) %}
    {%- set limit = dbt_studio.setting('stitch_duckdb_memory_limit') -%}
    {%- if limit is none -%}
        {%- set limit = '' if incremental else '40%' -%}
    {%- endif -%}
    {%- if not limit or 'memory_limit' in (target.get('settings') or {}) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if not modules.re.match('^\\s*[0-9]+(\\.[0-9]+)?\\s*([KMGT]i?B|B|%)?\\s*$', limit | string, modules.re.I) -%}
        {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model_name ~ "': var dbt_studio_stitch_duckdb_"
                                           ~ "memory_limit is '" ~ limit ~ "', not a size like '4GB' or '512MB' "
                                           ~ "or a share like '40%'") }}
    {%- endif -%}
    {%- do run_query('set memory_limit = ' ~ dbt_studio.string_literal(limit | string)) -%}
    {%- do log("dbt_studio: " ~ model_name ~ ": DuckDB memory_limit " ~ limit ~ " for this build", info=true) -%}
    {{ return(true) }}
{% endmacro %}

{#- Called while the build's work tables still exist: on DuckDB with a cap, logs how much of them sits in
    temporary files on disk (what the cap made spill), then resets the cap. -#}
{% macro stitch_session_end(model_name, changed) %}
    {{ return(adapter.dispatch('stitch_session_end', 'dbt_studio')(model_name, changed)) }}
{% endmacro %}

{% macro default__stitch_session_end(model_name, changed) %}
    {{ return(none) }}
{% endmacro %}

{% macro duckdb__stitch_session_end(model_name, changed) %}
    {%- if changed -%}
        {%- set spilled = run_query('select coalesce(sum(size), 0) from duckdb_temporary_files()') -%}
        {%- set mb = (spilled.columns[0].values()[0] | int) // 1048576 -%}
        {%- do log("dbt_studio: " ~ model_name ~ ": " ~ mb ~ " MB in DuckDB temporary files", info=true) -%}
        {%- do run_query('reset memory_limit') -%}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}
