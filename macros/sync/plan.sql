{#-
    Plan one sync: compare the model with the snapshot of what the destination acknowledged, inside the
    warehouse, and write `<sync>__plan` (_seq, _op, _key, tracked columns). Only the tracked (mapped)
    columns are compared, so a change to an unmapped column sends nothing.

      insert   keys never acknowledged
      update   changed rows of acknowledged keys (update mode: also new keys, as updates)
      delete   acknowledged keys gone from the model (on_delete: delete, or mirror mode)
      clear    the same, sent as a record with its fields emptied (on_delete: clear)

    A changed fingerprint (primary key, mappings or mode) or `full_resync` empties the snapshot first: a
    full resync sends every row and never emits deletes. Returns {insert, update, delete, clear, reset}.
-#}
{% macro sync_plan(sync, source, full_resync=false, dry_run=false, left_behind=false) %}
    {{ return(adapter.dispatch('sync_plan', 'dbt_studio')(sync, source, full_resync, dry_run, left_behind)) }}
{% endmacro %}

{#- dry_run: nothing is written; the counts and a sample of each operation come straight from the query.
    left_behind: a reset plan also counts the rows it does not delete (`left_behind`, sync_left_behind_sql). -#}
{% macro default__sync_plan(sync, source, full_resync=false, dry_run=false, left_behind=false) %}
    {%- set probe = dbt_studio.sync_plan_probe_sql(sync) -%}
    {%- set existing = [] -%}
    {%- for row in run_query(probe.tables).rows -%}
        {%- do existing.append(row[0] | lower) -%}
    {%- endfor -%}
    {%- set known = none -%}
    {%- if probe.names.configs in existing -%}
        {%- set rows = run_query(probe.fingerprint).rows -%}
        {%- set known = rows[0][0] if rows | length > 0 else none -%}
    {%- endif -%}
    {%- set snapshot_exists = probe.names.snapshot in existing -%}
    {%- set plan_has_rows = probe.names.plan in existing and run_query(probe.plan_rows).rows | length > 0 -%}
    {%- set decided = dbt_studio.sync_plan_decision(sync, full_resync, known, snapshot_exists, plan_has_rows) -%}
    {%- set reset = decided.reset -%}
    {%- set counts = {'insert': 0, 'update': 0, 'delete': 0, 'clear': 0, 'reset': reset} -%}
    {%- if left_behind and reset and snapshot_exists -%}  {#- before a reset empties the snapshot -#}
        {%- do counts.update({'left_behind': run_query(dbt_studio.sync_left_behind_sql(sync, source)).rows[0][0]
                                             | int}) -%}
    {%- endif -%}
    {%- if dry_run -%}
        {%- set preview = dbt_studio.sync_plan_preview_sql(sync, source, reset, decided.previous) -%}
        {%- for row in run_query(preview.counts).rows -%}
            {%- do counts.update({row[0]: row[1] | int}) -%}
        {%- endfor -%}
        {%- set result = run_query(preview.sample) -%}
        {%- do counts.update({'sample': {'columns': result.column_names | list,
                                         'rows': result.rows | map('list') | list}}) -%}
        {{ return(counts) }}
    {%- endif -%}
    {%- set write = dbt_studio.sync_plan_write_sql(sync, source, reset, decided.previous) -%}
    {%- for sql in write.statements -%}
        {%- do run_query(sql) -%}
    {%- endfor -%}
    {%- for row in run_query(write.counts).rows -%}
        {%- do counts.update({row[0]: row[1] | int}) -%}
    {%- endfor -%}
    {%- do adapter.commit() -%}
    {{ return(counts) }}
{% endmacro %}

{#- The reads that decide a plan, as SQL for runners that run them themselves (and keep them compiled):
    `tables` returns the name of each of the sync's `sync_configs`, snapshot and plan tables that exists (one
    metadata query for the three), `names` their lower-cased names; `fingerprint` reads the sync's recorded
    fingerprint (ask once `sync_configs` exists); `plan_rows` returns a row when the last plan has rows (ask once
    the plan exists); `snapshot_probe` runs when the snapshot exists. A runner on its own connection may run the
    reads first and list the tables only when one fails (CompiledSql.existing_rows). -#}
{% macro sync_plan_probe_sql(sync) %}
    {{ return(adapter.dispatch('sync_plan_probe_sql', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_plan_probe_sql(sync) %}
    {%- set configs = dbt_studio._state_relation(sync, 'sync_configs') -%}
    {%- set snapshot = dbt_studio._state_relation(sync, sync.name ~ '__snapshot') -%}
    {%- set plan = dbt_studio._state_relation(sync, sync.name ~ '__plan') -%}
    {{ return({
        'tables': dbt_studio._relations_exist_sql([configs, snapshot, plan]),
        'names': {'configs': configs.identifier | lower, 'snapshot': snapshot.identifier | lower,
                  'plan': plan.identifier | lower},
        'fingerprint': 'select fingerprint from ' ~ configs ~ ' where sync_name = '
                       ~ dbt_studio.string_literal(sync.name),
        'plan_rows': 'select 1 from ' ~ plan ~ ' limit 1',
        'snapshot_probe': 'select 1 from ' ~ snapshot ~ ' limit 0',
    }) }}
{% endmacro %}

{#- What the probe's answers mean: `reset` (a full resync: asked for, a first run, a changed fingerprint or a
    missing snapshot) and `previous` (the last plan has rows that may have been sent but not acknowledged). -#}
{% macro sync_plan_decision(sync, full_resync, known_fingerprint, snapshot_exists, plan_has_rows) %}
    {{ return(adapter.dispatch('sync_plan_decision', 'dbt_studio')(sync, full_resync, known_fingerprint,
                                                                     snapshot_exists, plan_has_rows)) }}
{% endmacro %}

{% macro default__sync_plan_decision(sync, full_resync, known_fingerprint, snapshot_exists, plan_has_rows) %}
    {%- set reset = full_resync or known_fingerprint is none or known_fingerprint != sync.fingerprint
                    or not snapshot_exists -%}
    {{ return({'reset': reset, 'previous': (not reset) and plan_has_rows}) }}
{% endmacro %}

{#- A dry run's SQL: `counts` (_op, n) and `sample` (a few rows of each operation) of the plan that would be
    made, as decided by sync_plan_decision; nothing is written. -#}
{% macro sync_plan_preview_sql(sync, source, reset, previous) %}
    {{ return(adapter.dispatch('sync_plan_preview_sql', 'dbt_studio')(sync, source, reset, previous)) }}
{% endmacro %}

{% macro default__sync_plan_preview_sql(sync, source, reset, previous) %}
    {%- set snapshot = dbt_studio._state_relation(sync, sync.name ~ '__snapshot') -%}
    {%- set empty_snapshot = '(' ~ dbt_studio._sync_empty_sql(sync, source) ~ ')' -%}
    {%- set plan_sql = dbt_studio._sync_plan_sql(
        sync, source, empty_snapshot if reset else snapshot, reset,
        previous=dbt_studio._state_relation(sync, sync.name ~ '__plan') if previous else none) -%}
    {{ return({'counts': 'select _op, count(*) as n from (' ~ plan_sql ~ ') as p group by _op',
               'sample': dbt_studio._sync_sample_sql('(' ~ plan_sql ~ ')')}) }}
{% endmacro %}

{#- How many rows the destination was last sent (the snapshot) are not among the model's rows the sync sends now:
    what a plan deletes, and what a reset plan (a full resync: a changed primary key, mapping or mode, or
    --full-resync) leaves in the destination. Ask only while the snapshot exists, before a reset empties it. -#}
{% macro sync_left_behind_sql(sync, source) %}
    {{ return(adapter.dispatch('sync_left_behind_sql', 'dbt_studio')(sync, source)) }}
{% endmacro %}

{% macro default__sync_left_behind_sql(sync, source) %}
    {%- set snapshot = dbt_studio._state_relation(sync, sync.name ~ '__snapshot') -%}
    {{ return('select count(*) as n from ' ~ snapshot ~ ' as acknowledged\nwhere not exists (\n'
              ~ '    select 1 from (\n' ~ dbt_studio._sync_current_sql(sync, source) ~ '\n    ) as current_rows\n'
              ~ '    where current_rows._key = acknowledged._key\n)') }}
{% endmacro %}

{#- The statements that write the plan sync_plan_decision chose: `statements` (a reset empties the snapshot, then
    the plan table is made) and `counts` (_op, n of the plan written). -#}
{% macro sync_plan_write_sql(sync, source, reset, previous) %}
    {{ return(adapter.dispatch('sync_plan_write_sql', 'dbt_studio')(sync, source, reset, previous)) }}
{% endmacro %}

{% macro default__sync_plan_write_sql(sync, source, reset, previous) %}
    {%- set snapshot = dbt_studio._state_relation(sync, sync.name ~ '__snapshot') -%}
    {%- set plan = dbt_studio._state_relation(sync, sync.name ~ '__plan') -%}
    {%- set statements = [] -%}
    {%- if reset -%}
        {%- do statements.append(dbt_studio._create_table_as(snapshot, dbt_studio._sync_empty_sql(sync, source))) -%}
    {%- endif -%}
    {%- set plan_sql = dbt_studio._sync_plan_sql(sync, source, snapshot, reset,
                                                 previous=plan if previous else none) -%}
    {%- do statements.append(dbt_studio._create_table_as(plan, plan_sql)) -%}
    {{ return({'statements': statements, 'counts': 'select _op, count(*) from ' ~ plan ~ ' group by _op'}) }}
{% endmacro %}

{#- DuckDB writes the plan uncompressed: it lives until its run settles (then it is emptied), and compressing it
    is most of the write (a first sync of 1M rows, 10 columns: 0.7–1.0 s compressed, 0.5 s not). While it exists it
    takes more disk (about 80 MB more at 1M rows). `force_compression` is a setting of the whole database, so it
    is reset right after, and left alone when the profile sets it. A plan write that fails in between leaves it
    set until the runner's session ends, which resets it (sync_session_end_sql). -#}
{% macro duckdb__sync_plan_write_sql(sync, source, reset, previous) %}
    {%- set write = dbt_studio.default__sync_plan_write_sql(sync, source, reset, previous) -%}
    {%- set statements = write.statements[:-1] + dbt_studio._duckdb_uncompressed(write.statements[-1]) -%}
    {{ return({'statements': statements, 'counts': write.counts}) }}  {#- default__ makes the plan table last -#}
{% endmacro %}

{#- A statement that writes the plan, between the setting and its reset (as it is when the profile sets it). -#}
{% macro _duckdb_uncompressed(statement) %}
    {%- if 'force_compression' in (target.get('settings') or {}) -%}
        {{ return([statement]) }}
    {%- endif -%}
    {{ return(["set force_compression = 'uncompressed'", statement, 'reset force_compression']) }}
{% endmacro %}

{#- A reset plan written in two parts, for runners that start sending before the whole plan is written (a first
    sync or a full resync of a million rows: the plan is most of the wait for the first request). `reset` empties
    the snapshot, `counts` then gives (_op, n) of the whole plan from the model, `first` writes any `first_rows` of
    its rows numbered 1..first_rows (a reset plan has one op: no order is owed, and finding the first keys in order
    meant sorting them all), `rest` appends the others numbered on by op and key; `whole` writes the whole plan
    instead (for a plan too small to split). `reset` and `whole` are sync_plan_write_sql's statements for a reset.
    Together the parts hold the whole plan's rows, numbered 1..n (keys are unique: sync_check_keys refuses
    duplicates). `first_rows` is a number or a bind parameter. -#}
{% macro sync_plan_write_parts_sql(sync, source, first_rows) %}
    {{ return(adapter.dispatch('sync_plan_write_parts_sql', 'dbt_studio')(sync, source, first_rows)) }}
{% endmacro %}

{% macro default__sync_plan_write_parts_sql(sync, source, first_rows) %}
    {%- set snapshot = dbt_studio._state_relation(sync, sync.name ~ '__snapshot') -%}
    {%- set plan = dbt_studio._state_relation(sync, sync.name ~ '__plan') -%}
    {%- set first = first_rows if first_rows is string else first_rows | int -%}
    {%- set first_sql = dbt_studio._sync_plan_sql(sync, source, snapshot, true, limit=first) -%}
    {%- set rest_sql = dbt_studio._sync_plan_sql(sync, source, snapshot, true, after=plan, after_rows=first) -%}
    {%- set write = dbt_studio.sync_plan_write_sql(sync, source, true, false) -%}  {#- the snapshot emptied first -#}
    {{ return({
        'reset': write.statements[:1],
        'counts': dbt_studio._sync_plan_sql(sync, source, snapshot, true, counting=true),
        'first': [dbt_studio._create_table_as(plan, first_sql)],
        'rest': ['insert into ' ~ plan ~ '\n' ~ rest_sql],
        'whole': write.statements[1:],
    }) }}
{% endmacro %}

{% macro duckdb__sync_plan_write_parts_sql(sync, source, first_rows) %}
    {%- set parts = dbt_studio.default__sync_plan_write_parts_sql(sync, source, first_rows) -%}
    {%- do parts.update({'first': dbt_studio._duckdb_uncompressed(parts.first[0]),
                         'rest': dbt_studio._duckdb_uncompressed(parts.rest[0])}) -%}
    {{ return(parts) }}  {#- `whole` comes uncompressed from duckdb__sync_plan_write_sql -#}
{% endmacro %}

{#- A run that committed every planned row (acknowledged or rejected) empties its plan, so the next plan need not
    look for rows of it that were sent but never committed (see `previous` in _sync_plan_sql). -#}
{% macro sync_plan_settled(sync) %}
    {{ return(adapter.dispatch('sync_plan_settled', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_plan_settled(sync) %}
    {%- do run_query(dbt_studio.sync_plan_settled_sql(sync)) -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{% macro sync_plan_settled_sql(sync) %}
    {{ return(adapter.dispatch('sync_plan_settled_sql', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_plan_settled_sql(sync) %}
    {{ return('delete from ' ~ dbt_studio._state_relation(sync, sync.name ~ '__plan')) }}
{% endmacro %}

{#- Recorded as soon as a reset plan is made: the emptied snapshot tracks the new fingerprint from then on, so a
    run that fails after the reset keeps what the destination acknowledged instead of resetting (and resending)
    again. -#}
{% macro sync_record_fingerprint(sync) %}
    {{ return(adapter.dispatch('sync_record_fingerprint', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_record_fingerprint(sync) %}
    {%- for sql in dbt_studio.sync_record_fingerprint_sql(sync) -%}
        {%- do run_query(sql) -%}
    {%- endfor -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{% macro sync_record_fingerprint_sql(sync) %}
    {{ return(adapter.dispatch('sync_record_fingerprint_sql', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_record_fingerprint_sql(sync) %}
    {%- set configs = dbt_studio._state_relation(sync, 'sync_configs') -%}
    {{ return([
        'delete from ' ~ configs ~ ' where sync_name = ' ~ dbt_studio.string_literal(sync.name),
        'insert into ' ~ configs ~ ' (sync_name, fingerprint, updated_at) select '
            ~ dbt_studio.string_literal(sync.name) ~ ', ' ~ dbt_studio.string_literal(sync.fingerprint) ~ ', '
            ~ dbt_studio._now(),
    ]) }}
{% endmacro %}

{% macro _now() -%}
cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- The model's rows the sync sends (macros/sync/rows.sql): key and tracked columns. -#}
{% macro _sync_current_sql(sync, source) -%}
{%- set selected = dbt_studio.sync_rows_predicate(sync) -%}
select
    {{ dbt_studio._sync_key_expr(sync.key_columns) }} as _key
    {%- for column in sync.columns %},
    {%- if column in (sync.computed or {}) %}
    {{ dbt_studio._sync_field_sql(sync.computed[column]) }} as {{ dbt_studio._sync_ident(column) }}
    {%- else %}
    {{ dbt_studio._sync_ident(column) }}
    {%- endif %}
    {%- endfor %}
from {{ source }}
{%- if selected %}
where {{ selected }}
{%- endif %}
{%- endmacro %}

{#- No rows, with the columns (and types) of _sync_current_sql: an empty snapshot. -#}
{% macro _sync_empty_sql(sync, source) -%}
select * from (
{{ dbt_studio._sync_current_sql(sync, source) }}
) as current_rows
where 1 = 0
{%- endmacro %}

{#- The set difference of two queries with the same columns: EXCEPT, or MINUS on Snowflake. -#}
{% macro except_rows(left_sql, right_sql) %}
    {{ return(adapter.dispatch('except_rows', 'dbt_studio')(left_sql, right_sql)) }}
{% endmacro %}

{% macro default__except_rows(left_sql, right_sql) -%}
{{ left_sql }}
except
{{ right_sql }}
{%- endmacro %}

{% macro snowflake__except_rows(left_sql, right_sql) -%}
{{ left_sql }}
minus
{{ right_sql }}
{%- endmacro %}

{#- `previous`: the last run's plan. Its rows the snapshot does not show as committed were sent but maybe not
    acknowledged (a crash, a timeout): the destination may hold them even when the model went back to what the
    snapshot has, so those keys are sent again as the model has them now (or deleted, when the model no longer
    has a key that was never committed). After a run that committed everything this adds nothing.
    `reset`: the snapshot is empty (a first sync, a full resync, a changed fingerprint), so every row of the model
    is changed: `changed` is the model's rows without the EXCEPT (keys are unique, sync_check_keys refuses a model
    with duplicates, so the EXCEPT would only hash every row to remove nothing: at 1M rows 1.0 s of the plan's
    1.7 s), no deletes, and the last plan adds nothing (its resends and deletes need a snapshot row).
    `counting`: (_op, n) of those rows instead of the rows, without numbering them. `limit`: any `limit` of the
    rows, numbered 1..limit (for a reset plan's first part). `after`: the rows not in the relation `after` (that
    first part, of `after_rows` rows), numbered from after_rows + 1 by op and key. -#}
{% macro _sync_plan_sql(sync, source, snapshot, reset, previous=none, counting=false, limit=none, after=none,
                        after_rows=none) -%}
{%- set columns = dbt_studio._sync_idents(sync.columns) -%}
{%- set with_deletes = not reset and (sync.mode == 'mirror' or sync.on_delete in ('delete', 'clear')) -%}
{%- set previous = none if reset else previous -%}
{%- set delete_op = 'clear' if sync.on_delete == 'clear' else 'delete' -%}
with current_rows as (
    {{ dbt_studio._sync_current_sql(sync, source) | indent(4) }}
),
changed as (
    {%- if reset %}
    select _key, {{ columns }} from current_rows
    {%- else %}
    {{ dbt_studio.except_rows('select _key, ' ~ columns ~ ' from current_rows',
                              'select _key, ' ~ columns ~ ' from ' ~ snapshot) | indent(4) }}
    {%- endif %}
),
{%- if previous %}
in_doubt as (
    select _key from (
        {{ dbt_studio.except_rows('select _key, ' ~ columns ~ ' from ' ~ previous
                                  ~ " where _op in ('insert', 'update')",
                                  'select _key, ' ~ columns ~ ' from ' ~ snapshot) | indent(8) }}
    ) as unconfirmed
    union all
    select _key from {{ previous }} where _op in ('delete', 'clear') and _key in (select _key from {{ snapshot }})
),
{%- endif %}
ops as (
    {%- if reset %}
    {#- a reset plan runs after its snapshot was emptied: every row is new to it, no join can find one #}
    select {{ "'update'" if sync.mode == 'update' else "'insert'" }} as _op, changed.*
    from changed
    {%- else %}
    select
        {%- if sync.mode == 'update' %}
        'update' as _op,
        {%- else %}
        case when acknowledged._key is null then 'insert' else 'update' end as _op,
        {%- endif %}
        changed.*
    from changed
    left join (select _key from {{ snapshot }}) as acknowledged on acknowledged._key = changed._key
    {%- if sync.mode == 'insert' %}
    where acknowledged._key is null
    {%- endif %}
    {%- endif %}
    {%- if with_deletes %}
    union all
    select '{{ delete_op }}' as _op, gone._key, {{ dbt_studio._sync_idents(sync.columns, 'gone.') }}
    from {{ snapshot }} as gone
    where not exists (select 1 from current_rows where current_rows._key = gone._key)
    {%- endif %}
    {%- if previous and sync.mode != 'insert' %}
    union all
    select 'update' as _op, resend.*
    from current_rows as resend
    where resend._key in (select _key from in_doubt)
        and resend._key in (select _key from {{ snapshot }})
        and resend._key not in (select _key from changed)
    {%- endif %}
    {%- if previous and with_deletes %}
    union all
    select '{{ delete_op }}' as _op, stray.*
    from (select _key, {{ columns }} from {{ previous }} where _op in ('insert', 'update')) as stray
    where stray._key in (select _key from in_doubt)
        and stray._key not in (select _key from current_rows)
        and stray._key not in (select _key from {{ snapshot }})
    {%- endif %}
)
{%- set only_keys -%}
_key in ({% for k in sync.only_keys %}{{ dbt_studio.string_literal(k) }}{{ ', ' if not loop.last }}{% endfor %})
{%- endset %}
{%- if counting %}
select _op, count(*) as n
from ops
{%- if sync.only_keys %}
where {{ only_keys }}
{%- endif %}
group by _op
{%- elif limit is not none %}
{#- any `limit` rows: a reset plan has one op, and sorting a million keys to find the first ones was most of the
    wait for the first request (0.14 s against 0.03 s at 1M rows) -#}
select row_number() over () as _seq, first_rows.*
from (
    select * from ops
    {%- if sync.only_keys %}
    where {{ only_keys }}
    {%- endif %}
    limit {{ limit }}
) as first_rows
order by _seq
{%- elif after is not none %}
{#- the rows not in `after` (a plan's first part of `after_rows` rows), numbered after it by op and key -#}
select {{ after_rows }} + row_number() over (order by _op, _key) as _seq, ops.*
from ops
where not exists (select 1 from {{ after }} as sent where sent._key = ops._key)
{%- if sync.only_keys %}
  and {{ only_keys }}
{%- endif %}
order by _seq
{%- else %}
select row_number() over (order by _op, _key) as _seq, ops.*
from ops
{%- if sync.only_keys %}
where {{ only_keys }}
{%- endif %}
order by _seq  {#- stored in _seq order, so the runner's page and commit ranges read only their rows #}
{%- endif %}
{%- endmacro %}

{#- One page of the plan's rows in delivery order (the runner pages by _seq, which runs 1..n). The bounds are
    numbers, or SQL expressions (bind parameters of a runner that keeps the statement). -#}
{% macro sync_plan_rows_sql(sync, first_seq, last_seq) %}
    {{ return(adapter.dispatch('sync_plan_rows_sql', 'dbt_studio')(sync, first_seq, last_seq)) }}
{% endmacro %}

{% macro default__sync_plan_rows_sql(sync, first_seq, last_seq) %}
    {%- set plan = dbt_studio._state_relation(sync, sync.name ~ '__plan') -%}
    {%- set first = first_seq if first_seq is string else first_seq | int -%}
    {%- set last = last_seq if last_seq is string else last_seq | int -%}
    {{ return('select * from ' ~ plan ~ ' where _seq between ' ~ first ~ ' and ' ~ last ~ ' order by _seq') }}
{% endmacro %}

{#- A few rows of each operation, for `dbt-studio plan`. -#}
{% macro _sync_sample_sql(plan, per_op=3) -%}
select * from (
    select p.*, row_number() over (partition by _op order by _seq) as _n from {{ plan }} as p
) as sampled
where _n <= {{ per_op }}
order by _op, _seq
{%- endmacro %}
