{#- The run log, the lock and housekeeping. -#}

{% macro sync_run_start(sync, run_id, model, destination, full_resync) %}
    {{ return(adapter.dispatch('sync_run_start', 'dbt_studio')(sync, run_id, model, destination, full_resync)) }}
{% endmacro %}

{% macro default__sync_run_start(sync, run_id, model, destination, full_resync) %}
    {%- set runs = dbt_studio._state_relation(sync, 'sync_runs') -%}
    {%- set values = [
        dbt_studio.string_literal(run_id), dbt_studio.string_literal(sync.name), dbt_studio.string_literal(model),
        dbt_studio.string_literal(destination), dbt_studio.string_literal(sync.mode), dbt_studio._now(),
        "'running'", 'true' if full_resync else 'false',
    ] -%}
    {%- do run_query('insert into ' ~ runs ~ ' (run_id, sync_name, model, destination, mode, started_at, status,'
                     ~ ' full_resync) select ' ~ values | join(', ')) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- A finished run that had nothing to send, as one statement that needs no run id from the caller (the
    warehouse makes it): a runner that found the plan empty logs the run with it instead of planning again. -#}
{% macro sync_nothing_to_send_sql(sync, model, destination) %}
    {{ return(adapter.dispatch('sync_nothing_to_send_sql', 'dbt_studio')(sync, model, destination)) }}
{% endmacro %}

{% macro default__sync_nothing_to_send_sql(sync, model, destination) %}
    {%- set runs = dbt_studio._state_relation(sync, 'sync_runs') -%}
    {%- set values = [
        dbt_studio._new_run_id(), dbt_studio.string_literal(sync.name), dbt_studio.string_literal(model),
        dbt_studio.string_literal(destination), dbt_studio.string_literal(sync.mode), dbt_studio._now(),
        dbt_studio._now(), "'success'", '0', '0', '0', '0', '0', 'false',
    ] -%}
    {{ return('insert into ' ~ runs ~ ' (run_id, sync_name, model, destination, mode, started_at, finished_at,'
              ~ ' status, planned_inserts, planned_updates, planned_deletes, acknowledged, rejected, full_resync)'
              ~ ' select ' ~ values | join(', ')) }}
{% endmacro %}

{#- 16 hex digits, like the runner's run ids, made by the warehouse. -#}
{% macro _new_run_id() %}
    {{ return(adapter.dispatch('_new_run_id', 'dbt_studio')()) }}
{% endmacro %}

{% macro default___new_run_id() -%}
substr(replace(cast(uuid() as {{ dbt.type_string() }}), '-', ''), 1, 16)
{%- endmacro %}

{% macro snowflake___new_run_id() -%}
substr(replace(uuid_string(), '-', ''), 1, 16)
{%- endmacro %}

{% macro sync_run_finish(sync, run_id, status, counts, acknowledged, rejected, error=none) %}
    {{ return(adapter.dispatch('sync_run_finish', 'dbt_studio')(sync, run_id, status, counts, acknowledged, rejected,
                                                                 error)) }}
{% endmacro %}

{% macro default__sync_run_finish(sync, run_id, status, counts, acknowledged, rejected, error=none) %}
    {%- do dbt_studio._drop_failed_transaction() -%}
    {%- set runs = dbt_studio._state_relation(sync, 'sync_runs') -%}
    {%- set error_sql = dbt_studio.string_literal(error | truncate(2000, true, '...')) if error else 'null' -%}
    {%- set assignments = [
        'finished_at = ' ~ dbt_studio._now(),
        'status = ' ~ dbt_studio.string_literal(status),
        'planned_inserts = ' ~ (counts.get('insert', 0) | int),
        'planned_updates = ' ~ (counts.get('update', 0) | int),
        'planned_deletes = ' ~ ((counts.get('delete', 0) + counts.get('clear', 0)) | int),
        'acknowledged = ' ~ (acknowledged | int),
        'rejected = ' ~ (rejected | int),
        'error = ' ~ error_sql,
    ] -%}
    {%- do run_query('update ' ~ runs ~ ' set ' ~ assignments | join(', ')
                     ~ ' where run_id = ' ~ dbt_studio.string_literal(run_id)
                     ~ ' and sync_name = ' ~ dbt_studio.string_literal(sync.name)) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- Take the sync's lock unless a live holder has it; returns the holder that has it after the attempt (two runs
    inserting at the same instant both read the same, earliest row: the other one removes its own).
    A holder is '<host>:<pid>:<run_id>'; the runner treats a lock of a dead process on its own host, or one
    older than the lock TTL, as stale and passes `steal`. -#}
{% macro sync_lock(sync, holder, steal_from=none) %}
    {{ return(adapter.dispatch('sync_lock', 'dbt_studio')(sync, holder, steal_from)) }}
{% endmacro %}

{% macro default__sync_lock(sync, holder, steal_from=none) %}
    {%- set locks = dbt_studio._state_relation(sync, 'sync_locks') -%}
    {%- set this_sync = 'sync_name = ' ~ dbt_studio.string_literal(sync.name) -%}
    {%- if steal_from -%}
        {%- do run_query('delete from ' ~ locks ~ ' where ' ~ this_sync
                         ~ ' and holder = ' ~ dbt_studio.string_literal(steal_from)) -%}
    {%- endif -%}
    {%- do run_query('insert into ' ~ locks ~ ' (sync_name, holder, acquired_at) select '
                     ~ dbt_studio.string_literal(sync.name) ~ ', ' ~ dbt_studio.string_literal(holder) ~ ', '
                     ~ dbt_studio._now()
                     ~ ' where not exists (select 1 from ' ~ locks ~ ' where ' ~ this_sync ~ ')') -%}
    {%- do adapter.commit() -%}
    {%- set rows = run_query('select holder, acquired_at from ' ~ locks ~ ' where ' ~ this_sync
                             ~ ' order by acquired_at, holder').rows -%}
    {{ return([rows[0][0], rows[0][1] | string] if rows else [none, none]) }}
{% endmacro %}

{% macro sync_unlock(sync, holder) %}
    {{ return(adapter.dispatch('sync_unlock', 'dbt_studio')(sync, holder)) }}
{% endmacro %}

{% macro default__sync_unlock(sync, holder) %}
    {%- do dbt_studio._drop_failed_transaction() -%}
    {%- set locks = dbt_studio._state_relation(sync, 'sync_locks') -%}
    {%- do run_query('delete from ' ~ locks ~ ' where sync_name = ' ~ dbt_studio.string_literal(sync.name)
                     ~ ' and holder = ' ~ dbt_studio.string_literal(holder)) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- Drop changelog rows older than the retention (var dbt_studio_changelog_retention_days). -#}
{% macro sync_prune_changelog(sync) %}
    {{ return(adapter.dispatch('sync_prune_changelog', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_prune_changelog(sync) %}
    {%- set changelog = dbt_studio._state_relation(sync, 'sync_changelog') -%}
    {%- set days = dbt_studio.setting('changelog_retention_days') | int -%}
    {%- do run_query('delete from ' ~ changelog ~ ' where acknowledged_at < '
                     ~ dbt.dateadd('day', -1 * days, dbt_studio._now())) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- Recent runs from the run log, newest first, for `dbt-studio status`. -#}
{% macro sync_recent_runs(state_schema, limit=20) %}
    {{ return(adapter.dispatch('sync_recent_runs', 'dbt_studio')(state_schema, limit)) }}
{% endmacro %}

{% macro default__sync_recent_runs(state_schema, limit=20) %}
    {%- set sql = dbt_studio.sync_recent_runs_sql(state_schema, limit) -%}
    {%- if run_query(sql.exists).rows | length == 0 -%}
        {{ return({'columns': [], 'rows': []}) }}
    {%- endif -%}
    {%- set result = run_query(sql.query) -%}
    {{ return({'columns': result.column_names | list, 'rows': result.rows | map('list') | list}) }}
{% endmacro %}

{#- The statements behind sync_recent_runs, run by the caller: `exists` returns a row when the run log exists,
    `query` reads it. They depend only on their arguments and the target, so the runner may keep them compiled
    (sync_runner/project/compiled.py) and run them without loading dbt. -#}
{% macro sync_recent_runs_sql(state_schema, limit=20) %}
    {{ return(adapter.dispatch('sync_recent_runs_sql', 'dbt_studio')(state_schema, limit)) }}
{% endmacro %}

{% macro default__sync_recent_runs_sql(state_schema, limit=20) %}
    {%- set runs = api.Relation.create(database=target.database, schema=state_schema, identifier='sync_runs') -%}
    {%- set query -%}
        select run_id, sync_name, model, destination, mode, started_at, finished_at, status,
               planned_inserts, planned_updates, planned_deletes, acknowledged, rejected, error
        from {{ runs }}
        order by started_at desc
        limit {{ limit | int }}
    {%- endset -%}
    {{ return({'exists': adapter.dispatch('_relation_exists_sql', 'dbt_studio')(runs), 'query': query}) }}
{% endmacro %}

{#- Rejected keys of a sync with their reasons and attempts. -#}
{% macro sync_rejections(sync, limit=100) %}
    {{ return(adapter.dispatch('sync_rejections', 'dbt_studio')(sync, limit)) }}
{% endmacro %}

{% macro default__sync_rejections(sync, limit=100) %}
    {%- set rejections = dbt_studio._state_relation(sync, sync.name ~ '__rejections') -%}
    {%- set result = run_query('select _key, reason, attempts from ' ~ rejections
                               ~ ' order by last_rejected_at desc limit ' ~ (limit | int)) -%}
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

{#- The status of the sync's latest finished run in the run log (none before its first), read before a run starts:
    alerts tell a recovery from it. -#}
{% macro sync_last_status(sync) %}
    {{ return(adapter.dispatch('sync_last_status', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_last_status(sync) %}
    {%- set runs = dbt_studio._state_relation(sync, 'sync_runs') -%}
    {%- set rows = run_query('select status from ' ~ runs
                             ~ ' where sync_name = ' ~ dbt_studio.string_literal(sync.name)
                             ~ " and status <> 'running' order by started_at desc limit 1").rows -%}
    {{ return(rows[0][0] if rows else none) }}
{% endmacro %}
