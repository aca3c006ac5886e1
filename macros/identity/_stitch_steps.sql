{#-
    The statements of one id_stitcher run, in order. `prior` is the existing output (incremental) or none.

    Vertices are numbered without sorting (the numbers only name vertices inside one run): every accepted
    identifier of the run is a vertex, and on incremental runs every prior cluster touched by the run is one
    more vertex, linked to its identifiers by an edge. The survivor of a component is chosen after connected
    components, by priority: prior clusters first (earliest first-seen, then main_id), then identifiers
    (earliest first-seen, then type and value).
-#}

{#- Observations: the model's rows, each with `is_new`: whether it can change the graph.

    A full build reads every row, all new. An incremental run reads every row too (late rows carry any timestamp:
    backfills, new sources, offline devices), and compares it with the prior output: an identifier row is new
    when its identifier is not in the graph or its time falls outside the identifier's first/last seen; a link
    is new when either end is not in the graph or the two ends sit in different clusters. Only new rows, the
    rejected ones (the rejection log), links under a `max_edges` cap (caps count every link) and rows with a
    load time (the next watermark is their newest) are kept.

    `lookback_hours` (opt-in, for sources whose timestamps follow load order): read only rows newer than the
    output's newest last_seen_at minus the lookback (rows without a timestamp are always read). -#}
{% macro _stitch_observations_sql(model_sql, prior, lookback_hours, narrow=false) -%}
{%- if prior is none -%}
select observations.*, true as is_new
from (
{{ model_sql }}
) as observations
{%- else -%}
with observations as {{ dbt_studio._materialized_cte() if narrow }}(
    select *
    from (
{{ model_sql }}
    ) as observations
    {%- if lookback_hours is not none %}
    where seen_at is null
       or seen_at > (
            select {{ dbt.dateadd('hour', -1 * lookback_hours, 'max(last_seen_at)') }}
            from {{ prior }}
        )
       or (select max(last_seen_at) from {{ prior }}) is null
    {%- endif %}
),
{%- if narrow %}
{#- few rows read (every source from its watermark): the graph's rows of their identifiers, found by one scan that
    probes the small set of them. Joined to the whole graph directly, DuckDB could not tell the read was small and
    hashed the graph side: 7.7 s against 1.6 s at 35M ids. When every row is read, the direct joins are faster.
    The scan matches values alone (the joins below match type and value): one string compared instead of two,
    0.13 s against 0.16 s over 3.5M ids. -#}
keys as (
    select id_value from observations where id_value is not null
    union
    select other_value from observations where other_type is not null
),
known as {{ dbt_studio._materialized_cte() }}(
    select p.id_type, p.id_value, p.main_id, p.first_seen_at, p.last_seen_at
    from {{ prior }} as p
    where p.id_value in (select id_value from keys)
),
{%- endif %}
compared as (
    select
        o.*,
        p.main_id as prior_main_id,
        q.main_id as other_prior_main_id,
        case
            when o.reject_reason is not null or o.id_value is null then false
            when o.other_type is null then
                p.main_id is null
                or (o.seen_at is not null
                    and (p.first_seen_at is null or o.seen_at < p.first_seen_at or o.seen_at > p.last_seen_at))
            else q.main_id is null or p.main_id is null or p.main_id <> q.main_id
        end as is_new
    from observations as o
    {%- set graph = 'known' if narrow else prior %}
    left join {{ graph }} as p on p.id_type = o.id_type and p.id_value = o.id_value
    left join {{ graph }} as q on q.id_type = o.other_type and q.id_value = o.other_value
)
select *
from compared
where is_new
   or reject_reason is not null
   or max_edges is not null
   or max_edges_reverse is not null
   or loaded_at is not null
{%- endif %}
{%- endmacro %}

{#- Identifiers linked to more distinct values of another type than their `max_edges` allows: they lose
    every edge to that type (the identifier itself is kept).

    Links are counted over the capped pairs of this run's observations. A run that reads only newly loaded rows
    (`loaded_at`, a lookback) also counts the links earlier runs read, kept in `history` (`<model>__cap_links`),
    for the identifiers this run's links touch: theirs are the only counts that can have grown, and the only ones
    this run's edges need. -#}
{% macro _stitch_capped_sql(obs, history=none) -%}
with pairs as (
    select id_type, id_value, other_type, other_value, max_edges, max_edges_reverse
    from {{ obs }}
    where other_type is not null
      and (max_edges is not null or max_edges_reverse is not null)
),
{%- if history is not none %}
touched as (
    select id_type, id_value from pairs
    union
    select other_type, other_value from pairs
),
{#- the history's links of touched values, by value alone (one string to probe: faster than type and value; the
    counts of identifiers not touched that this gives are dropped at the end) -#}
touched_values as (
    select distinct id_value from touched
),
linked as (
    select id_type, id_value, other_type, other_value, max_edges, max_edges_reverse from pairs
    union all
    select h.id_type, h.id_value, h.other_type, h.other_value, h.max_edges, h.max_edges_reverse
    from {{ history }} as h
    where h.id_value in (select id_value from touched_values)
    union all
    select h.id_type, h.id_value, h.other_type, h.other_value, h.max_edges, h.max_edges_reverse
    from {{ history }} as h
    where h.other_value in (select id_value from touched_values)
),
{%- endif %}
{%- set links = 'linked' if history is not none else 'pairs' %}
forward as (
    select id_type, id_value, other_type, count(distinct other_value) as linked_values, max(max_edges) as max_edges
    from {{ links }}
    where max_edges is not null
    group by id_type, id_value, other_type
),
reverse as (
    select other_type as id_type, other_value as id_value, id_type as other_type,
           count(distinct id_value) as linked_values, max(max_edges_reverse) as max_edges
    from {{ links }}
    where max_edges_reverse is not null
    group by other_type, other_value, id_type
),
capped as (
    select id_type, id_value, other_type, linked_values, max_edges from forward where linked_values > max_edges
    union all
    select id_type, id_value, other_type, linked_values, max_edges from reverse where linked_values > max_edges
)
select c.id_type, c.id_value, c.other_type, c.linked_values, c.max_edges
from capped as c
{%- if history is not none %}
where exists (select 1 from touched as t where t.id_type = c.id_type and t.id_value = c.id_value)
{%- endif %}
{%- endmacro %}

{#- The links under a cap that this run read and the history (`<model>__cap_links`, none when it is written
    anew) does not hold yet: what the run adds to it. -#}
{% macro _stitch_cap_links_sql(obs, history=none) -%}
select distinct id_type, id_value, other_type, other_value, max_edges, max_edges_reverse
from {{ obs }} as o
where o.other_type is not null
  and (o.max_edges is not null or o.max_edges_reverse is not null)
{%- if history is not none %}
  and not exists (
    select 1 from {{ history }} as h
    where h.id_type = o.id_type and h.id_value = o.id_value
      and h.other_type = o.other_type and h.other_value = o.other_value
  )
{%- endif %}
{%- endmacro %}

{#- Identifiers capped now that no earlier run capped (those are in the rejection log): few or none. -#}
{% macro _stitch_newly_capped_sql(capped, rejected) -%}
select c.id_type, c.id_value, c.other_type, c.linked_values, c.max_edges
from {{ capped }} as c
{%- if rejected is not none %}
where not exists (
    select 1 from {{ rejected }} as r
    where r.other_type = c.other_type and r.id_type = c.id_type and r.raw_value = c.id_value
)
{%- endif %}
{%- endmacro %}

{#- Of the newly capped identifiers, those that share a cluster of the prior output with a value they link to:
    people merged through them, whom a full build keeps apart and an incremental run, which never splits a
    cluster, cannot part. Their links are this run's and, when kept, earlier runs'. Each once, most linked first.
    (Run only when some identifier is newly capped: it looks their partners up in the whole prior output.) -#}
{% macro _stitch_merged_through_sql(obs, capped, prior, rejected, history=none) -%}
with newly as (
{{ dbt_studio._stitch_newly_capped_sql(capped, rejected) | indent(4, first=true) }}
),
links as (
    select id_type, id_value, other_type, other_value
    from {{ obs }}
    where other_type is not null
      and (max_edges is not null or max_edges_reverse is not null)
    {%- if history is not none %}
    union all
    select id_type, id_value, other_type, other_value from {{ history }}
    {%- endif %}
),
partners as (
    select n.id_type, n.id_value, n.other_type, n.linked_values, n.max_edges, l.other_value as partner
    from newly as n
    inner join links as l on l.id_type = n.id_type and l.id_value = n.id_value and l.other_type = n.other_type
    union all
    select n.id_type, n.id_value, n.other_type, n.linked_values, n.max_edges, l.id_value as partner
    from newly as n
    inner join links as l on l.other_type = n.id_type and l.other_value = n.id_value and l.id_type = n.other_type
)
select distinct p.id_type, p.id_value, p.other_type, p.linked_values, p.max_edges
from partners as p
inner join {{ prior }} as mine on mine.id_type = p.id_type and mine.id_value = p.id_value
inner join {{ prior }} as theirs on theirs.id_type = p.other_type and theirs.id_value = p.partner
where mine.main_id = theirs.main_id
order by p.linked_values desc, p.id_type, p.id_value
{%- endmacro %}

{#- On an incremental run: a sentence naming the caps this run newly reached on identifiers whose links had
    merged people (an incremental run never splits a cluster, so only a rebuild parts them), or an empty string.
    A run that reads from watermarks without a history of links yet (caps added to a built graph, or one built
    before the history was kept) starts the history with the links it reads and says that caps count links
    from there on. -#}
{% macro _stitch_caps_reached(obs, capped, prior, rejected, history, keeps_history, since) %}
    {%- if keeps_history and history is none and since -%}
        {%- do log("dbt_studio: " ~ this.name ~ ": max_edges caps count the links read from this run on; run "
                   ~ "dbt build -s " ~ this.name ~ " --full-refresh once so they count every row", info=true) -%}
        {{ return('') }}
    {%- endif -%}
    {%- if run_query(dbt_studio._stitch_newly_capped_sql(capped, rejected) ~ '\nlimit 1').rows | length == 0 -%}
        {{ return('') }}
    {%- endif -%}
    {%- set found = run_query(dbt_studio._stitch_merged_through_sql(obs, capped, prior, rejected, history)).rows -%}
    {%- if found | length == 0 -%}
        {{ return('') }}
    {%- endif -%}
    {%- set top = found[0] -%}
    {%- set more = found | length - 1 -%}
    {{ return("a max_edges cap was newly reached: " ~ top[0] ~ " '" ~ top[1] ~ "' is linked to " ~ top[3] ~ " "
              ~ top[2] ~ " values (cap " ~ top[4] ~ ")"
              ~ (" (and " ~ more ~ " more identifier" ~ ("s" if more > 1) ~ ")" if more else "")) }}
{% endmacro %}

{#- Every identifier of this run's new rows, numbered, with when it was first and last seen in them. On
    incremental runs the ends of new links are vertices too (their own rows may hold nothing new), and each
    carries the main_id it has in the prior output (null when it is new there): the observations looked it up
    already, so finding the clusters a run touches needs no second look-up by identifier. -#}
{% macro _stitch_nodes_sql(obs, incremental=false) -%}
select
    row_number() over () as vid,
    id_type,
    id_value,
    first_seen_at,
    last_seen_at
    {%- if incremental %},
    prior_main_id
    {%- endif %}
from (
    select id_type, id_value, min(seen_at) as first_seen_at, max(seen_at) as last_seen_at
        {%- if incremental %}, max(prior_main_id) as prior_main_id{% endif %}
    from (
        select id_type, id_value, seen_at{% if incremental %}, prior_main_id{% endif %}
        from {{ obs }}
        where other_type is null and is_new and reject_reason is null and id_value is not null
        {%- if incremental %}
        union all
        select id_type, id_value, cast(null as {{ dbt.type_timestamp() }}) as seen_at, prior_main_id
        from {{ obs }}
        where other_type is not null and is_new
        union all
        select other_type, other_value, cast(null as {{ dbt.type_timestamp() }}) as seen_at, other_prior_main_id
        from {{ obs }}
        where other_type is not null and is_new
        {%- endif %}
    ) as seen
    group by id_type, id_value
) as accepted
{%- endmacro %}

{#- Incremental runs: each prior cluster this run touches, as one more vertex (numbered after the nodes) with its
    earliest first_seen_at, listed with every identifier it holds in the prior output (the identifier's own first
    and last seen, and its vertex when it is among this run's nodes). The one scan of the prior output by main_id:
    the merge rewrites rows of these clusters only, so it reads them here instead of the whole output. -#}
{% macro _stitch_clusters_sql(nodes, prior) -%}
{%- set row = dbt_studio._row_locator('p') -%}
{#- `held` is read twice below: materialized, the output is scanned once -#}
with held as {{ dbt_studio._materialized_cte() }}(
    select p.main_id, p.id_type, p.id_value, p.first_seen_at, p.last_seen_at
        {%- if row %}, {{ row }} as prior_row{% endif %}
    from {{ prior }} as p
    where p.main_id in (select prior_main_id from {{ nodes }} where prior_main_id is not null)
),
numbered as (
    select
        (select coalesce(max(vid), 0) from {{ nodes }}) + row_number() over () as vid,
        main_id,
        first_seen_at
    from (
        select main_id, min(first_seen_at) as first_seen_at
        from held
        group by main_id
    ) as touched
)
select
    c.vid,
    c.main_id,
    c.first_seen_at,
    h.id_type,
    h.id_value,
    h.first_seen_at as id_first_seen_at,
    h.last_seen_at as id_last_seen_at,
    n.vid as node_vid
    {%- if row %},
    h.prior_row
    {%- endif %}
from numbered as c
inner join held as h on h.main_id = c.main_id
left join {{ nodes }} as n on n.id_type = h.id_type and n.id_value = h.id_value
{%- endmacro %}

{#- Edges between vertices, each once as (larger, smaller), without the capped ones and without self loops. -#}
{% macro _stitch_edges_sql(obs, capped, nodes, clusters) -%}
with kept as (
    select o.id_type, o.id_value, o.other_type, o.other_value
    from {{ obs }} as o
    where o.other_type is not null
      and o.is_new
      and not exists (
        select 1 from {{ capped }} as c
        where c.id_type = o.id_type and c.id_value = o.id_value and c.other_type = o.other_type
      )
      and not exists (
        select 1 from {{ capped }} as c
        where c.id_type = o.other_type and c.id_value = o.other_value and c.other_type = o.id_type
      )
),
{#- each link once, as (larger, smaller): the form connected_components takes; a cluster vertex is numbered after
    every node -#}
pairs as (
    select greatest(na.vid, nb.vid) as a, least(na.vid, nb.vid) as b
    from kept as k
    inner join {{ nodes }} as na on na.id_type = k.id_type and na.id_value = k.id_value
    inner join {{ nodes }} as nb on nb.id_type = k.other_type and nb.id_value = k.other_value
    where na.vid <> nb.vid
    {%- if clusters is not none %}
    union all
    select vid as a, node_vid as b from {{ clusters }} where node_vid is not null
    {%- endif %}
)
select distinct a, b from pairs
{%- endmacro %}

{#- The main_id minted for a new cluster from its earliest-seen identifier. -#}
{% macro _mint_main_id(id_type, id_value) -%}
{{ dbt.hash(dbt.concat([id_type, "':'", id_value])) }}
{%- endmacro %}

{#- Each vertex's main_id: the survivor of its component names it. -#}
{% macro _stitch_result_sql(nodes, clusters, labels) -%}
{%- set string = dbt.type_string() -%}
{%- set survivor = 'partition by coalesce(l.label, v.vid) order by v.tier, v.first_seen_at nulls last, '
                   ~ 'v.key_type, v.key_value' -%}
with vertices as (
    select vid, 1 as tier, first_seen_at, last_seen_at, id_type as key_type, id_value as key_value,
           cast(null as {{ string }}) as prior_main_id
    from {{ nodes }}
    {%- if clusters is not none %}
    union all
    select distinct vid, 0 as tier, first_seen_at, cast(null as {{ dbt.type_timestamp() }}) as last_seen_at,
           main_id as key_type, cast(null as {{ string }}) as key_value, main_id as prior_main_id
    from {{ clusters }}
    {%- endif %}
),
{#- one pass: every vertex with the first of its component by priority (a vertex alone is its own) -#}
ranked as (
    select
        v.vid, v.tier, v.prior_main_id, v.key_type, v.key_value, v.first_seen_at, v.last_seen_at,
        first_value(v.tier) over ({{ survivor }}) as survivor_tier,
        first_value(v.key_type) over ({{ survivor }}) as survivor_type,
        first_value(v.key_value) over ({{ survivor }}) as survivor_value
    from vertices as v
    left join {{ labels }} as l on l.node = v.vid
)
select
    vid,
    tier,
    prior_main_id,
    key_type as id_type,
    key_value as id_value,
    first_seen_at,
    last_seen_at,
    case
        when survivor_tier = 0 then survivor_type
        else {{ dbt_studio._mint_main_id('survivor_type', 'survivor_value') }}
    end as main_id
from ranked
{%- endmacro %}

{#- Merges of prior clusters in this run (result none: the log's empty shape). -#}
{% macro _stitch_changes_sql(result) -%}
select
    prior_main_id as old_main_id,
    main_id as new_main_id,
    cast('merge' as {{ dbt.type_string() }}) as reason,
    cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as changed_at,
    cast('{{ invocation_id }}' as {{ dbt.type_string() }}) as invocation_id
{%- if result is none %}
from (select cast(null as {{ dbt.type_string() }}) as prior_main_id,
             cast(null as {{ dbt.type_string() }}) as main_id) as nothing
where 1 = 0
{%- else %}
from {{ result }}
where tier = 0 and prior_main_id <> main_id
{%- endif %}
{%- endmacro %}

{#- What screening and caps dropped in this run, with counts; rows with a load time apart from rows without one
    (those are read again by every run, so their counts are replaced rather than appended). -#}
{% macro _stitch_rejected_sql(obs, capped) -%}
select
    id_type,
    raw_value,
    reject_reason as reason,
    cast(null as {{ dbt.type_string() }}) as other_type,
    source_name,
    count(*) as occurrences,
    min(seen_at) as first_seen_at,
    max(seen_at) as last_seen_at,
    cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as detected_at,
    max(loaded_at) as loaded_at
from (
    select id_type, raw_value, reject_reason, source_name, seen_at, loaded_at,
           case when loaded_at is null then 1 else 0 end as without_load_time
    from {{ obs }}
    where other_type is null and reject_reason is not null
) as rejected
group by id_type, raw_value, reject_reason, source_name, without_load_time
union all
select
    id_type,
    id_value as raw_value,
    {{ dbt.concat(["'max_edges: linked to '", dbt.safe_cast('linked_values', dbt.type_string()), "' '", 'other_type',
                   "' values (cap '", dbt.safe_cast('max_edges', dbt.type_string()), "')'"]) }} as reason,
    other_type,
    cast(null as {{ dbt.type_string() }}) as source_name,
    linked_values as occurrences,
    cast(null as {{ dbt.type_timestamp() }}) as first_seen_at,
    cast(null as {{ dbt.type_timestamp() }}) as last_seen_at,
    cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as detected_at,
    cast(null as {{ dbt.type_timestamp() }}) as loaded_at
from {{ capped }}
{%- endmacro %}

{#- The output of a full build: this run's identifiers with their main_ids (the result, never materialized). -#}
{% macro _stitch_output_sql(result_sql) -%}
select main_id, id_type, id_value, first_seen_at, last_seen_at
from (
{{ result_sql }}
) as result
{%- endmacro %}

{#- An incremental run's changes to the output, one row per identifier: identifiers of merged clusters with the
    survivor's main_id, this run's identifiers with their new first/last seen. Rows of untouched clusters are not
    among them (they are never rewritten); the prior rows of touched ones are in `clusters`. -#}
{% macro _stitch_upserts_sql(clusters, result) -%}
with moved as (
    select prior_main_id, main_id from {{ result }} where tier = 0 and prior_main_id <> main_id
),
changed as (
    select coalesce(m.main_id, c.main_id) as main_id, c.id_type, c.id_value,
           c.id_first_seen_at as first_seen_at, c.id_last_seen_at as last_seen_at
    from {{ clusters }} as c
    left join moved as m on m.prior_main_id = c.main_id
    where m.main_id is not null or c.node_vid is not null
    union all
    select main_id, id_type, id_value, first_seen_at, last_seen_at
    from {{ result }}
    where tier = 1
)
select max(main_id) as main_id, id_type, id_value,
       min(first_seen_at) as first_seen_at, max(last_seen_at) as last_seen_at
from changed
group by id_type, id_value
{%- endmacro %}

{#- The upserts written into the output in the run's transaction (readers see all of them or none). -#}
{% macro _stitch_merge_sql(target, clusters, result) %}
    {{ return(adapter.dispatch('_stitch_merge_sql', 'dbt_studio')(target, clusters, result)) }}
{% endmacro %}

{#- One MERGE: one statement, which is what Snowflake bills. -#}
{% macro default___stitch_merge_sql(target, clusters, result) -%}
merge into {{ target }} as t
using (
{{ dbt_studio._stitch_upserts_sql(clusters, result) | indent(4, first=true) }}
) as s
on t.id_type = s.id_type and t.id_value = s.id_value
when matched then update set
    main_id = s.main_id, first_seen_at = s.first_seen_at, last_seen_at = s.last_seen_at
when not matched then insert (main_id, id_type, id_value, first_seen_at, last_seen_at)
    values (s.main_id, s.id_type, s.id_value, s.first_seen_at, s.last_seen_at)
{%- endmacro %}

{#- DuckDB: the upserts staged, their old rows deleted and the new ones appended. A MERGE that updates rows in
    place makes DuckDB rewrite their row groups: at 1M persons (3.5M ids, 59k upserts) the MERGE took 0.57 s and
    its commit 0.55 s, against 0.32 s and 0.03 s for these statements. Every old row of an upsert is in
    `clusters` (a touched identifier's whole prior cluster is), which kept its rowid: the delete finds them by
    rowid, in the run's transaction, instead of joining the whole output on two strings (at 1M persons 22 ms
    against 85 ms). -#}
{% macro duckdb___stitch_merge_sql(target, clusters, result) -%}
{%- set upserts = dbt_studio._work_relation(target, '__stitch_upserts') -%}
{{ dbt_studio._create_work_table(upserts, dbt_studio._stitch_upserts_sql(clusters, result)) }};
delete from {{ target }}
where rowid in (
    select c.prior_row
    from {{ clusters }} as c
    inner join {{ upserts }} as s on s.id_type = c.id_type and s.id_value = c.id_value
);
insert into {{ target }} (main_id, id_type, id_value, first_seen_at, last_seen_at)
select main_id, id_type, id_value, first_seen_at, last_seen_at
from {{ upserts }};
drop table {{ upserts }}
{%- endmacro %}

{#- The row of `<model>__screening_rules`: the digest of the screening rules the graph was built under. -#}
{% macro _stitch_rules_sql(rules) -%}
select cast('{{ rules }}' as {{ dbt.type_string() }}) as rules,
       cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as recorded_at
{%- endmacro %}

{#- The reads id_edges chose (its marker comment in the model's SQL): {sources, read_keys, since, caps, rules}. -#}
{% macro _stitch_reads(model_sql) %}
    {%- set found = modules.re.search('/\\* dbt_studio.id_edges reads: (.*?) \\*/', model_sql) -%}
    {{ return(fromjson(found.group(1)) if found else {'sources': [], 'read_keys': {}, 'since': {}}) }}
{% endmacro %}

{% macro _sql_string_list(values) -%}
{%- for value in values -%}
'{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}
{%- endfor -%}
{%- endmacro %}

{#- Before a partial run appends its rejections: those it reads again are forgotten (every row of the sources it
    read in full, the rows without a load time of the others). -#}
{% macro _stitch_forget_rejections_sql(rejected, read_in_full) -%}
delete from {{ rejected }}
where loaded_at is null and source_name is not null
{%- if read_in_full %}
   or source_name in ({{ dbt_studio._sql_string_list(read_in_full) }})
{%- endif %}
{%- endmacro %}

{#- Each source's watermark: the newest load time of the rows this run read, with the relation and expression
    it was read by (`keys`: {source name: read key}). -#}
{% macro _stitch_watermarks_sql(obs, keys) -%}
select
    source_name,
    cast(case source_name
        {%- for name, key in keys.items() %}
        when '{{ name | replace("'", "''") }}' then '{{ key | replace("'", "''") }}'
        {%- endfor %}
    end as {{ dbt.type_string() }}) as read_key,
    max(loaded_at) as loaded_at,
    cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as updated_at
from {{ obs }}
where loaded_at is not null
  and source_name in ({{ dbt_studio._sql_string_list(keys.keys()) }})
group by source_name
{%- endmacro %}

{#- Watermarks of the sources this run read rows with a load time from, moved (or added) in one statement. -#}
{% macro _stitch_watermarks_merge_sql(watermarks, obs, keys) -%}
merge into {{ watermarks }} as t
using (
{{ dbt_studio._stitch_watermarks_sql(obs, keys) }}
) as s
on t.source_name = s.source_name
when matched then update set read_key = s.read_key, loaded_at = s.loaded_at, updated_at = s.updated_at
when not matched then insert (source_name, read_key, loaded_at, updated_at)
    values (s.source_name, s.read_key, s.loaded_at, s.updated_at)
{%- endmacro %}

{#- A rejection log written before rejections had a load time (a lookback run appends to it) gets the column. -#}
{% macro _stitch_rejections_have_loaded_at(rejected) %}
    {%- set names = adapter.get_columns_in_relation(rejected) | map(attribute='name') | map('lower') | list -%}
    {%- if 'loaded_at' not in names -%}
        {%- do run_query('alter table ' ~ rejected ~ ' add column loaded_at ' ~ dbt.type_timestamp()) -%}
    {%- endif -%}
{% endmacro %}
