{#- The run log, the lock and housekeeping. -#}

{% macro sync_run_start(sync, run_id, model, destination, full_resync) %}
    {%- set runs = dbt_studio._state_relation(sync, 'sync_runs') -%}
    {%- do run_query('insert into ' ~ runs ~ " (run_id, sync_name, model, destination, mode, started_at, status, full_resync) select '"
        ~ run_id ~ "', '" ~ sync.name ~ "', " ~ dbt_studio.string_literal(model) ~ ", " ~ dbt_studio.string_literal(destination) ~ ", '"
        ~ sync.mode ~ "', " ~ dbt_studio._now() ~ ", 'running', " ~ ('true' if full_resync else 'false')) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{% macro sync_run_finish(sync, run_id, status, counts, acknowledged, rejected, error=none) %}
    {%- do dbt_studio._drop_failed_transaction() -%}
    {%- set runs = dbt_studio._state_relation(sync, 'sync_runs') -%}
    {%- do run_query('update ' ~ runs ~ " set finished_at = " ~ dbt_studio._now() ~ ", status = '" ~ status ~ "'"
        ~ ", planned_inserts = " ~ (counts.get('insert', 0) | int) ~ ", planned_updates = " ~ (counts.get('update', 0) | int)
        ~ ", planned_deletes = " ~ ((counts.get('delete', 0) + counts.get('clear', 0)) | int)
        ~ ", acknowledged = " ~ (acknowledged | int) ~ ", rejected = " ~ (rejected | int)
        ~ ", error = " ~ (dbt_studio.string_literal(error | truncate(2000, true, '...')) if error else 'null')
        ~ " where run_id = '" ~ run_id ~ "' and sync_name = '" ~ sync.name ~ "'") -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- Take the sync's lock unless a live holder has it; returns the holder that has it after the attempt (two runs
    inserting at the same instant both read the same, earliest row: the other one removes its own).
    A holder is '<host>:<pid>:<run_id>'; the runner treats a lock of a dead process on its own host, or one
    older than the lock TTL, as stale and passes `steal`. -#}
{% macro sync_lock(sync, holder, steal_from=none) %}
    {%- set locks = dbt_studio._state_relation(sync, 'sync_locks') -%}
    {%- if steal_from -%}
        {%- do run_query("delete from " ~ locks ~ " where sync_name = '" ~ sync.name ~ "' and holder = " ~ dbt_studio.string_literal(steal_from)) -%}
    {%- endif -%}
    {%- do run_query("insert into " ~ locks ~ " (sync_name, holder, acquired_at) select '" ~ sync.name ~ "', "
        ~ dbt_studio.string_literal(holder) ~ ", " ~ dbt_studio._now()
        ~ " where not exists (select 1 from " ~ locks ~ " where sync_name = '" ~ sync.name ~ "')") -%}
    {%- do adapter.commit() -%}
    {%- set rows = run_query("select holder, acquired_at from " ~ locks ~ " where sync_name = '" ~ sync.name ~ "' order by acquired_at, holder").rows -%}
    {{ return([rows[0][0], rows[0][1] | string] if rows else [none, none]) }}
{% endmacro %}

{% macro sync_unlock(sync, holder) %}
    {%- do dbt_studio._drop_failed_transaction() -%}
    {%- set locks = dbt_studio._state_relation(sync, 'sync_locks') -%}
    {%- do run_query("delete from " ~ locks ~ " where sync_name = '" ~ sync.name ~ "' and holder = " ~ dbt_studio.string_literal(holder)) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- Drop changelog rows older than the retention (var dbt_studio_changelog_retention_days). -#}
{% macro sync_prune_changelog(sync) %}
    {%- set changelog = dbt_studio._state_relation(sync, 'sync_changelog') -%}
    {%- set days = dbt_studio.setting('changelog_retention_days') | int -%}
    {%- do run_query('delete from ' ~ changelog ~ ' where acknowledged_at < ' ~ dbt.dateadd('day', -1 * days, dbt_studio._now())) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- Recent runs from the run log, newest first, for `dbt-studio status`. -#}
{% macro sync_recent_runs(state_schema, limit=20) %}
    {%- set runs = api.Relation.create(database=target.database, schema=state_schema, identifier='sync_runs') -%}
    {%- if not dbt_studio._relation_exists(runs) -%}
        {{ return({'columns': [], 'rows': []}) }}
    {%- endif -%}
    {%- set result = run_query('select run_id, sync_name, model, destination, mode, started_at, finished_at, status, planned_inserts, planned_updates, planned_deletes, acknowledged, rejected, error from ' ~ runs ~ ' order by started_at desc limit ' ~ (limit | int)) -%}
    {{ return({'columns': result.column_names | list, 'rows': result.rows | map('list') | list}) }}
{% endmacro %}

{#- Rejected keys of a sync with their reasons and attempts. -#}
{% macro sync_rejections(sync, limit=100) %}
    {%- set rejections = dbt_studio._state_relation(sync, sync.name ~ '__rejections') -%}
    {%- set result = run_query('select _key, reason, attempts from ' ~ rejections ~ ' order by last_rejected_at desc limit ' ~ (limit | int)) -%}
    {{ return(result.rows | map('list') | list) }}
{% endmacro %}

{#- After a commit failed half-way (the warehouse errored or the connection dropped mid-transaction), discard what
    it did: dbt-snowflake does not roll back a failed statement's explicit transaction, and the run log update and
    the unlock would otherwise run inside it and be lost with it (leaving the lock taken). DuckDB's adapter rolls
    back on the error itself. -#}
{% macro _drop_failed_transaction() %}
    {{ return(adapter.dispatch('_drop_failed_transaction', 'dbt_studio')()) }}
{% endmacro %}

{% macro default___drop_failed_transaction() %}
{% endmacro %}

{% macro snowflake___drop_failed_transaction() %}
    {%- do run_query('rollback') -%}
{% endmacro %}
