{#-
    The writing steps of a sync as statements, for runners that run them on a connection of their own and keep
    them compiled (sync_runner/project/compiled.py): the run log, the lock, the plan and the commit compile once
    per sync configuration, not once per run. Values that change from run to run (run id, holder, counts, an
    error, acknowledged ranges) are SQL expressions the caller passes: literals when dbt runs the statement
    (the macros in runs.sql, plan.sql, commit.sql render them), bind parameters (sync_parameter) when the runner
    keeps the SQL and binds the values itself.
-#}

{#- A named bind parameter of the runner's driver: `$name` (DuckDB); `%(name)s` on Snowflake's connector. -#}
{% macro sync_parameter(name) %}
    {{ return(adapter.dispatch('sync_parameter', 'dbt_studio')(name)) }}
{% endmacro %}

{% macro default__sync_parameter(name) -%}
    ${{ name }}
{%- endmacro %}

{% macro snowflake__sync_parameter(name) -%}
    %({{ name }})s
{%- endmacro %}

{#- The transaction statements a runner wraps a commit in (sync_commit_sql). -#}
{% macro sync_transaction_sql() %}
    {{ return(adapter.dispatch('sync_transaction_sql', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__sync_transaction_sql() %}
    {{ return({'begin': 'begin transaction', 'commit': 'commit', 'rollback': 'rollback'}) }}
{% endmacro %}

{#- The rows a destination rejected, as a relation (_seq, reason) of two bound lists (`seqs`, `reasons`: parameters
    of sync_parameter): one kept commit shape records any number of rejected rows in two statements, where a
    shape per row ran six statements a row (3,000 rejected rows: 18,000 statements, 18 s). Only the runner that
    keeps statements on a DuckDB file's own connection binds lists. -#}
{% macro sync_listed_rejections(seqs, reasons) %}
    {{ return(adapter.dispatch('sync_listed_rejections', 'dbt_studio')(seqs, reasons)) }}
{% endmacro %}

{% macro default__sync_listed_rejections(seqs, reasons) -%}
select unnest(cast({{ seqs }} as bigint[])) as _seq, unnest(cast({{ reasons }} as varchar[])) as reason
{%- endmacro %}

{#- A text value cut to `n` characters (the last three '...'), as the run log and rejections keep it. -#}
{% macro _sync_capped(expr, n) -%}
case when length({{ expr }}) > {{ n }} then substr({{ expr }}, 1, {{ n - 3 }}) || '...' else {{ expr }} end
{%- endmacro %}
