{#-
    Commit what the destination acknowledged, in one transaction: the acknowledged plan rows move into the
    snapshot (deletes and clears leave it), each lands in the changelog, their old rejections are cleared,
    and rejected rows are recorded with their reason and attempt count. A crash before the commit leaves
    the state as it was, so the next run plans those rows again (delivery is at least once).

    acked:    [[first_seq, last_seq], ...] ranges of plan rows the destination acknowledged
    rejected: [[seq, reason], ...] rows inside those ranges that it rejected (never committed)
-#}
{% macro sync_commit(sync, run_id, acked, rejected=[]) %}
    {{ return(adapter.dispatch('sync_commit', 'dbt_studio')(sync, run_id, acked, rejected)) }}
{% endmacro %}

{% macro default__sync_commit(sync, run_id, acked, rejected=[]) %}
    {%- if acked | length == 0 and rejected | length == 0 -%}
        {{ return(0) }}
    {%- endif -%}
    {%- set ranges = [] -%}
    {%- for r in acked -%}{%- do ranges.append([r[0] | int, r[1] | int]) -%}{%- endfor -%}
    {%- set reasons = [] -%}
    {%- for r in rejected -%}
        {%- do reasons.append([r[0] | int, dbt_studio.string_literal(r[1] | string)]) -%}
    {%- endfor -%}
    {%- do dbt_studio._in_transaction(dbt_studio.sync_commit_sql(sync, dbt_studio.string_literal(run_id), ranges,
                                                                 reasons)) -%}
    {{ return(1) }}
{% endmacro %}

{#- How many keys the destination refused and that are still waiting in `<sync>__rejections` (each is planned
    again by every run until it is accepted): a run that only retries them and is refused again is no new failure. -#}
{% macro sync_refused_rows(sync) %}
    {{ return(adapter.dispatch('sync_refused_rows', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_refused_rows(sync) %}
    {{ return(run_query(dbt_studio.sync_refused_rows_sql(sync)).rows[0][0] | int) }}
{% endmacro %}

{#- The same count as a statement, for runners that keep it compiled. -#}
{% macro sync_refused_rows_sql(sync) %}
    {{ return(adapter.dispatch('sync_refused_rows_sql', 'dbt_studio')(sync)) }}
{% endmacro %}

{% macro default__sync_refused_rows_sql(sync) %}
    {{ return('select count(*) from ' ~ dbt_studio._state_relation(sync, sync.name ~ '__rejections')) }}
{% endmacro %}

{#- The statements of sync_commit, to run in one transaction. `run_id`, the bounds of each range in `acked` and the
    seq and reason of each row in `rejected` are SQL expressions (literals, or bind parameters of a runner that
    keeps the statements compiled for one shape of commit); a reason is cut to 1,000 characters. `rejected` may
    instead be a relation (_seq, reason), e.g. sync_listed_rejections: its rows are left out of the acknowledged
    ranges and, with `record_rejected`, recorded. Without acknowledged ranges only the rejections are written. -#}
{% macro sync_commit_sql(sync, run_id, acked, rejected=[], record_rejected=true) %}
    {{ return(adapter.dispatch('sync_commit_sql', 'dbt_studio')(sync, run_id, acked, rejected, record_rejected)) }}
{% endmacro %}

{% macro default__sync_commit_sql(sync, run_id, acked, rejected=[], record_rejected=true) %}
    {%- set snapshot = dbt_studio._state_relation(sync, sync.name ~ '__snapshot') -%}
    {%- set plan = dbt_studio._state_relation(sync, sync.name ~ '__plan') -%}
    {%- set rejections = dbt_studio._state_relation(sync, sync.name ~ '__rejections') -%}
    {%- set changelog = dbt_studio._state_relation(sync, 'sync_changelog') -%}
    {%- set columns = dbt_studio._sync_idents(sync.columns) -%}
    {%- set ranges = [] -%}
    {%- for r in acked -%}
        {%- do ranges.append('_seq between ' ~ r[0] ~ ' and ' ~ r[1]) -%}
    {%- endfor -%}
    {%- set in_ranges = '(' ~ (ranges | join(' or ') if ranges else '1 = 0') ~ ')' -%}
    {%- if rejected is string -%}
        {%- set not_rejected = '_seq not in (select _seq from (' ~ rejected ~ ') as rj)' -%}
        {%- set reasons = 'select _seq, ' ~ dbt_studio._sync_capped('reason', 1000) ~ ' as reason from ('
                          ~ rejected ~ ') as rj' if record_rejected else none -%}
    {%- else -%}
        {%- set rejected_seqs = rejected | map(attribute=0) | map('string') | list -%}
        {%- set not_rejected = ('_seq not in (' ~ rejected_seqs | join(', ') ~ ')') if rejected_seqs else '1 = 1' -%}
        {%- set selects = [] -%}
        {%- for r in rejected -%}
            {%- do selects.append('select ' ~ r[0] ~ ' as _seq, ' ~ dbt_studio._sync_capped(r[1], 1000)
                                  ~ ' as reason') -%}
        {%- endfor -%}
        {%- set reasons = selects | join('\n            union all\n            ')
                          if selects and record_rejected else none -%}
    {%- endif -%}
    {%- set acknowledged = 'select * from ' ~ plan ~ ' where ' ~ in_ranges ~ ' and ' ~ not_rejected -%}
    {#- an insert's key is never in the snapshot, so only the other operations need its old row deleted -#}
    {%- set statements = [
        'delete from ' ~ snapshot ~ ' where _key in (select _key from (' ~ acknowledged
            ~ ") as a where _op <> 'insert')",
        'insert into ' ~ snapshot ~ ' (_key, ' ~ columns ~ ') select _key, ' ~ columns ~ ' from (' ~ acknowledged
            ~ ") as a where _op in ('insert', 'update')",
        'insert into ' ~ changelog ~ ' (run_id, sync_name, _key, op, acknowledged_at) select '
            ~ run_id ~ ', ' ~ dbt_studio.string_literal(sync.name) ~ ', _key, _op, '
            ~ dbt_studio._now() ~ ' from (' ~ acknowledged ~ ') as a',
        'delete from ' ~ rejections ~ ' where _key in (select _key from (' ~ acknowledged ~ ') as a)',
    ] if acked | length > 0 else [] -%}
    {%- if reasons -%}
        {%- set rejected_rows = 'select p._key, r.reason from ' ~ plan ~ ' as p inner join (' ~ reasons
                                ~ ') as r on r._seq = p._seq' -%}
        {%- do statements.append('update ' ~ rejections ~ ' set attempts = attempts + 1, reason = rr.reason,'
                                 ~ ' last_rejected_at = ' ~ dbt_studio._now() ~ ' from (' ~ rejected_rows
                                 ~ ') as rr where ' ~ rejections ~ '._key = rr._key') -%}
        {%- do statements.append('insert into ' ~ rejections
                                 ~ ' (_key, reason, attempts, first_rejected_at, last_rejected_at)'
                                 ~ ' select rr._key, rr.reason, 1, ' ~ dbt_studio._now() ~ ', ' ~ dbt_studio._now()
                                 ~ ' from (' ~ rejected_rows ~ ') as rr'
                                 ~ ' where not exists (select 1 from ' ~ rejections
                                 ~ ' as old where old._key = rr._key)') -%}
    {%- endif -%}
    {{ return(statements) }}
{% endmacro %}

{#- Run statements all-or-nothing. -#}
{% macro _in_transaction(statements) %}
    {{ return(adapter.dispatch('_in_transaction', 'dbt_studio')(statements)) }}
{% endmacro %}

{#- `run_query` never opens dbt's transaction (auto_begin=false), so each statement would commit on its own:
    `adapter.execute(auto_begin=true)` opens it (DuckDB: BEGIN), the adapter rolls it back when a statement
    fails, and `adapter.commit()` ends it. -#}
{% macro default___in_transaction(statements) %}
    {%- for sql in statements -%}
        {%- do adapter.execute(sql, auto_begin=true) -%}
    {%- endfor -%}
    {%- do adapter.commit() -%}
{% endmacro %}

{#- Snowflake autocommits each statement unless a transaction is opened explicitly, and dbt-snowflake does not
    roll back when a statement fails: a commit that failed half-way leaves its transaction open in the session,
    so the next attempt first rolls that back (a no-op when none is open). -#}
{% macro snowflake___in_transaction(statements) %}
    {%- do run_query('rollback') -%}
    {%- do run_query('begin') -%}
    {%- for sql in statements -%}
        {%- do run_query(sql) -%}
    {%- endfor -%}
    {%- do run_query('commit') -%}
{% endmacro %}
