{#- The run log, the lock and housekeeping. -#}

{% macro sync_run_start(sync, run_id, model, destination, full_resync) %}
    {{ return(adapter.dispatch('sync_run_start', 'dbt_studio')(sync, run_id, model, destination, full_resync)) }}
{% endmacro %}

{% macro default__sync_run_start(sync, run_id, model, destination, full_resync) %}
    {%- do run_query(dbt_studio.sync_run_start_sql(sync, dbt_studio.string_literal(run_id),
                                                   dbt_studio.string_literal(model),
                                                   dbt_studio.string_literal(destination),
                                                   'true' if full_resync else 'false')) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- The statement of sync_run_start; each value a SQL expression (a literal, or a bind parameter). -#}
{% macro sync_run_start_sql(sync, run_id, model, destination, full_resync) %}
    {{ return(adapter.dispatch('sync_run_start_sql', 'dbt_studio')(sync, run_id, model, destination, full_resync)) }}
{% endmacro %}

{% macro default__sync_run_start_sql(sync, run_id, model, destination, full_resync) %}
    {%- set runs = dbt_studio._state_relation(sync, 'sync_runs') -%}
    {%- set values = [
        run_id, dbt_studio.string_literal(sync.name), model, destination, dbt_studio.string_literal(sync.mode),
        dbt_studio._now(), "'running'", full_resync,
    ] -%}
    {{ return('insert into ' ~ runs ~ ' (run_id, sync_name, model, destination, mode, started_at, status,'
              ~ ' full_resync) select ' ~ values | join(', ')) }}
{% endmacro %}

{% macro sync_run_finish(sync, run_id, status, counts, acknowledged, rejected, error=none) %}
    {{ return(adapter.dispatch('sync_run_finish', 'dbt_studio')(sync, run_id, status, counts, acknowledged, rejected,
                                                                 error)) }}
{% endmacro %}

{% macro default__sync_run_finish(sync, run_id, status, counts, acknowledged, rejected, error=none) %}
    {%- do dbt_studio._drop_failed_transaction() -%}
    {%- do run_query(dbt_studio.sync_run_finish_sql(
        sync, dbt_studio.string_literal(run_id), dbt_studio.string_literal(status),
        counts.get('insert', 0) | int, counts.get('update', 0) | int,
        (counts.get('delete', 0) + counts.get('clear', 0)) | int, acknowledged | int, rejected | int,
        dbt_studio.string_literal(error) if error else 'null')) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- The statement of sync_run_finish; each value a SQL expression (`error` is cut to 2,000 characters). -#}
{% macro sync_run_finish_sql(sync, run_id, status, planned_inserts, planned_updates, planned_deletes, acknowledged,
                             rejected, error) %}
    {{ return(adapter.dispatch('sync_run_finish_sql', 'dbt_studio')(sync, run_id, status, planned_inserts,
                                                                     planned_updates, planned_deletes, acknowledged,
                                                                     rejected, error)) }}
{% endmacro %}

{% macro default__sync_run_finish_sql(sync, run_id, status, planned_inserts, planned_updates, planned_deletes,
                                      acknowledged, rejected, error) %}
    {%- set runs = dbt_studio._state_relation(sync, 'sync_runs') -%}
    {%- set assignments = [
        'finished_at = ' ~ dbt_studio._now(),
        'status = ' ~ status,
        'planned_inserts = ' ~ planned_inserts,
        'planned_updates = ' ~ planned_updates,
        'planned_deletes = ' ~ planned_deletes,
        'acknowledged = ' ~ acknowledged,
        'rejected = ' ~ rejected,
        'error = ' ~ dbt_studio._sync_capped(error, 2000),
    ] -%}
    {{ return('update ' ~ runs ~ ' set ' ~ assignments | join(', ') ~ ' where run_id = ' ~ run_id
              ~ ' and sync_name = ' ~ dbt_studio.string_literal(sync.name)) }}
{% endmacro %}

{#- Take the sync's lock unless a live holder has it; returns the holder that has it after the attempt (two runs
    inserting at the same instant both read the same, earliest row: the other one removes its own).
    A holder is '<host>:<pid>:<run_id>'; the runner treats a lock of a dead process on its own host, or one
    older than the lock TTL, as stale and passes `steal`. -#}
{% macro sync_lock(sync, holder, steal_from=none) %}
    {{ return(adapter.dispatch('sync_lock', 'dbt_studio')(sync, holder, steal_from)) }}
{% endmacro %}

{% macro default__sync_lock(sync, holder, steal_from=none) %}
    {%- set sql = dbt_studio.sync_lock_sql(sync, dbt_studio.string_literal(holder),
                                           dbt_studio.string_literal(steal_from) if steal_from else none) -%}
    {%- if steal_from -%}
        {%- do run_query(sql.steal) -%}
    {%- endif -%}
    {%- do run_query(sql.take) -%}
    {%- do adapter.commit() -%}
    {%- set rows = run_query(sql.holder).rows -%}
    {{ return([rows[0][0], rows[0][1] | string] if rows else [none, none]) }}
{% endmacro %}

{#- The statements of sync_lock: `steal` (only when `steal_from` is given) removes a stale holder's row, `take`
    inserts ours unless a row is there, `holder` reads who has it (holder, acquired_at). -#}
{% macro sync_lock_sql(sync, holder, steal_from=none) %}
    {{ return(adapter.dispatch('sync_lock_sql', 'dbt_studio')(sync, holder, steal_from)) }}
{% endmacro %}

{% macro default__sync_lock_sql(sync, holder, steal_from=none) %}
    {%- set locks = dbt_studio._state_relation(sync, 'sync_locks') -%}
    {%- set this_sync = 'sync_name = ' ~ dbt_studio.string_literal(sync.name) -%}
    {{ return({
        'steal': 'delete from ' ~ locks ~ ' where ' ~ this_sync ~ ' and holder = ' ~ steal_from if steal_from else none,
        'take': 'insert into ' ~ locks ~ ' (sync_name, holder, acquired_at) select '
                ~ dbt_studio.string_literal(sync.name) ~ ', ' ~ holder ~ ', ' ~ dbt_studio._now()
                ~ ' where not exists (select 1 from ' ~ locks ~ ' where ' ~ this_sync ~ ')',
        'holder': 'select holder, acquired_at from ' ~ locks ~ ' where ' ~ this_sync ~ ' order by acquired_at, holder',
    }) }}
{% endmacro %}

{% macro sync_unlock(sync, holder) %}
    {{ return(adapter.dispatch('sync_unlock', 'dbt_studio')(sync, holder)) }}
{% endmacro %}

{% macro default__sync_unlock(sync, holder) %}
    {%- do dbt_studio._drop_failed_transaction() -%}
    {%- do run_query(dbt_studio.sync_unlock_sql(sync, dbt_studio.string_literal(holder))) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{% macro sync_unlock_sql(sync, holder) %}
    {{ return(adapter.dispatch('sync_unlock_sql', 'dbt_studio')(sync, holder)) }}
{% endmacro %}

{% macro default__sync_unlock_sql(sync, holder) %}
    {{ return('delete from ' ~ dbt_studio._state_relation(sync, 'sync_locks') ~ ' where sync_name = '
              ~ dbt_studio.string_literal(sync.name) ~ ' and holder = ' ~ holder) }}
{% endmacro %}

{#- Drop changelog rows older than the retention (var dbt_studio_changelog_retention_days). -#}
{% macro sync_prune_changelog(sync) %}
    {{ return(adapter.dispatch('sync_prune_changelog', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_prune_changelog(sync) %}
    {%- do run_query(dbt_studio.sync_prune_changelog_sql(sync)) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{% macro sync_prune_changelog_sql(sync) %}
    {{ return(adapter.dispatch('sync_prune_changelog_sql', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_prune_changelog_sql(sync) %}
    {%- set days = dbt_studio.setting('changelog_retention_days') | int -%}
    {{ return('delete from ' ~ dbt_studio._state_relation(sync, 'sync_changelog') ~ ' where acknowledged_at < '
              ~ dbt.dateadd('day', -1 * days, dbt_studio._now())) }}
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
    {{ return({'exists': dbt_studio._relation_exists_sql(runs), 'query': query}) }}
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
    {%- set rows = run_query(dbt_studio.sync_last_status_sql(sync)).rows -%}
    {{ return(rows[0][0] if rows else none) }}
{% endmacro %}

{% macro sync_last_status_sql(sync) %}
    {{ return(adapter.dispatch('sync_last_status_sql', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_last_status_sql(sync) %}
    {{ return('select status from ' ~ dbt_studio._state_relation(sync, 'sync_runs')
              ~ ' where sync_name = ' ~ dbt_studio.string_literal(sync.name)
              ~ " and status <> 'running' order by started_at desc limit 1") }}
{% endmacro %}
