{#-
    The record debugger's captures, in the state schema's `sync_debug` table (one for all syncs), written only for
    syncs run with `debug: true` (or `dbt-studio sync --debug`):

      event 'planned'        one row per plan row of the run (op, key)
      event 'batch'          one row per attempt at a batch: the request and response (redacted, size-capped)
      event 'sent'           one row per record per attempt, with the payload sent
      event 'acknowledged' / 'rejected' (with the reason) / 'failed' (the batch's error)

    `batch` is the first plan row (_seq) of the batch and `attempt` its attempt, so a record's 'sent' row finds
    its batch's request and response. Rows older than the sync's `debug_days` are deleted at the next run.
-#}
{% macro sync_debug_prepare(sync) %}
    {{ return(adapter.dispatch('sync_debug_prepare', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_debug_prepare(sync) %}
    {%- set string, ts, int = dbt.type_string(), dbt.type_timestamp(), dbt.type_bigint() -%}
    {%- set relation = dbt_studio._state_relation(sync, 'sync_debug') -%}
    {%- if not dbt_studio._relation_exists(relation) -%}
        {%- do run_query('create table if not exists ' ~ relation ~ ' (run_id ' ~ string ~ ', sync_name ' ~ string
                         ~ ', _key ' ~ string ~ ', op ' ~ string ~ ', event ' ~ string ~ ', batch ' ~ int
                         ~ ', attempt ' ~ int ~ ', reason ' ~ string ~ ', payload ' ~ string ~ ', request '
                         ~ string ~ ', response ' ~ string ~ ', captured_at ' ~ ts ~ ')') -%}
    {%- endif -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- Delete the captures of this sync older than `days` days. -#}
{% macro sync_debug_prune(sync, days) %}
    {{ return(adapter.dispatch('sync_debug_prune', 'dbt_studio')(sync, days)) }}
{% endmacro %}

{% macro default__sync_debug_prune(sync, days) %}
    {%- set relation = dbt_studio._state_relation(sync, 'sync_debug') -%}
    {%- do run_query('delete from ' ~ relation ~ ' where sync_name = ' ~ dbt_studio.string_literal(sync.name)
                     ~ ' and captured_at < ' ~ dbt.dateadd('day', -1 * (days | int), dbt_studio._now())) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- One 'planned' row per row of this run's plan. -#}
{% macro sync_debug_planned(sync, run_id) %}
    {{ return(adapter.dispatch('sync_debug_planned', 'dbt_studio')(sync, run_id)) }}
{% endmacro %}

{% macro default__sync_debug_planned(sync, run_id) %}
    {%- set relation = dbt_studio._state_relation(sync, 'sync_debug') -%}
    {%- set plan = dbt_studio._state_relation(sync, sync.name ~ '__plan') -%}
    {%- do run_query('insert into ' ~ relation ~ ' (run_id, sync_name, _key, op, event, batch, captured_at) select '
                     ~ dbt_studio.string_literal(run_id) ~ ', ' ~ dbt_studio.string_literal(sync.name)
                     ~ ", _key, _op, 'planned', _seq, " ~ dbt_studio._now() ~ ' from ' ~ plan) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- rows: [[key, op, event, batch, attempt, reason, payload, request, response], ...] (texts already redacted). -#}
{% macro sync_debug_write(sync, run_id, rows) %}
    {{ return(adapter.dispatch('sync_debug_write', 'dbt_studio')(sync, run_id, rows)) }}
{% endmacro %}

{% macro default__sync_debug_write(sync, run_id, rows) %}
    {%- if rows | length == 0 -%}{{ return(0) }}{%- endif -%}
    {%- set relation = dbt_studio._state_relation(sync, 'sync_debug') -%}
    {%- set string, int = dbt.type_string(), dbt.type_bigint() -%}
    {%- for chunk in rows | batch(200) -%}
        {%- set selects = [] -%}
        {%- for r in chunk -%}
            {%- set values = [] -%}
            {%- for i in range(9) -%}
                {%- set v = r[i] -%}
                {%- if v is none -%}
                    {%- do values.append('cast(null as ' ~ (int if i in (3, 4) else string) ~ ')') -%}
                {%- elif i in (3, 4) -%}
                    {%- do values.append(v | int) -%}
                {%- else -%}
                    {%- do values.append(dbt_studio.string_literal(v | string)) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- do selects.append('select ' ~ values | join(', ')) -%}
        {%- endfor -%}
        {%- do run_query('insert into ' ~ relation ~ ' (run_id, sync_name, _key, op, event, batch, attempt, reason,'
                         ~ ' payload, request, response, captured_at) select ' ~ dbt_studio.string_literal(run_id)
                         ~ ', ' ~ dbt_studio.string_literal(sync.name) ~ ', r.*, ' ~ dbt_studio._now()
                         ~ ' from (' ~ selects | join(' union all ') ~ ') as r') -%}
    {%- endfor -%}
    {%- do adapter.commit() -%}
    {{ return(rows | length) }}
{% endmacro %}

{#- One record's history, oldest first: the debugger's captures (with their batch's request and response), every
    acknowledged change of the changelog, and the open rejection. Rows: [happened_at, run_id, event, op, batch, attempt,
    reason, payload, request, response]. -#}
{% macro sync_record_history(sync, key) %}
    {{ return(adapter.dispatch('sync_record_history', 'dbt_studio')(sync, key)) }}
{% endmacro %}

{% macro default__sync_record_history(sync, key) %}
    {%- set name, k = dbt_studio.string_literal(sync.name), dbt_studio.string_literal(key) -%}
    {%- set string, int = dbt.type_string(), dbt.type_bigint() -%}
    {%- set parts = [] -%}
    {%- set debug = dbt_studio._state_relation(sync, 'sync_debug') -%}
    {%- if dbt_studio._relation_exists(debug) -%}
        {%- do parts.append('select d.captured_at as happened_at, d.run_id, d.event, d.op, d.batch, d.attempt,'
                            ~ ' d.reason, d.payload, b.request, b.response from ' ~ debug ~ ' as d left join ' ~ debug
                            ~ " as b on b.event = 'batch' and d.event = 'sent' and b.run_id = d.run_id"
                            ~ ' and b.sync_name = d.sync_name and b.batch = d.batch and b.attempt = d.attempt'
                            ~ ' where d.sync_name = ' ~ name ~ ' and d._key = ' ~ k) -%}
    {%- endif -%}
    {%- set null_text, null_int = 'cast(null as ' ~ string ~ ')', 'cast(null as ' ~ int ~ ')' -%}
    {%- set changelog = dbt_studio._state_relation(sync, 'sync_changelog') -%}
    {%- if dbt_studio._relation_exists(changelog) -%}
        {%- do parts.append("select acknowledged_at as happened_at, run_id, 'committed' as event, op, "
                            ~ [null_int, null_int, null_text, null_text, null_text, null_text] | join(', ')
                            ~ ' from ' ~ changelog ~ ' where sync_name = ' ~ name ~ ' and _key = ' ~ k) -%}
    {%- endif -%}
    {%- set rejections = dbt_studio._state_relation(sync, sync.name ~ '__rejections') -%}
    {%- if dbt_studio._relation_exists(rejections) -%}
        {%- do parts.append('select last_rejected_at as happened_at, ' ~ null_text ~ ", 'still rejected', "
                            ~ null_text ~ ', ' ~ null_int ~ ', attempts, reason, '
                            ~ [null_text, null_text, null_text] | join(', ')
                            ~ ' from ' ~ rejections ~ ' where _key = ' ~ k) -%}
    {%- endif -%}
    {%- if not parts -%}{{ return([]) }}{%- endif -%}
    {%- set rank = "case event when 'planned' then 0 when 'sent' then 1 when 'committed' then 3"
                   ~ " when 'still rejected' then 4 else 2 end" -%}
    {%- set result = run_query('select * from (' ~ parts | join(' union all ') ~ ') as h order by happened_at, '
                               ~ rank ~ ', attempt') -%}
    {{ return(result.rows | map('list') | list) }}
{% endmacro %}
