{#-
    The statements of one id_stitcher run, in order. `prior` is the existing output (incremental) or none.

    Vertices are numbered without sorting (the numbers only name vertices inside one run): every accepted
    identifier of the run is a vertex, and on incremental runs every prior cluster touched by the run is one
    more vertex, linked to its identifiers by an edge. The survivor of a component is chosen after connected
    components, by priority: prior clusters first (earliest first-seen, then main_id), then identifiers
    (earliest first-seen, then type and value).
-#}

{#- Observations: the model's rows; on incremental runs only rows newer than the output's newest minus the
    lookback (rows without a timestamp are always read: merging them again changes nothing). -#}
{% macro _stitch_observations_sql(model_sql, prior, lookback_hours) -%}
select *
from (
{{ model_sql }}
) as observations
{%- if prior is not none %}
where seen_at is null
   or seen_at > (
        select {{ dbt.dateadd('hour', -1 * lookback_hours, 'max(last_seen_at)') }}
        from {{ prior }}
    )
   or (select max(last_seen_at) from {{ prior }}) is null
{%- endif %}
{%- endmacro %}

{#- Identifiers linked to more distinct values of another type than their `max_edges` allows: they lose
    every edge to that type (the identifier itself is kept). -#}
{% macro _stitch_capped_sql(obs) -%}
with pairs as (
    select id_type, id_value, other_type, other_value, max_edges, max_edges_reverse
    from {{ obs }}
    where other_type is not null
      and (max_edges is not null or max_edges_reverse is not null)
),
forward as (
    select id_type, id_value, other_type, count(distinct other_value) as linked_values, max(max_edges) as max_edges
    from pairs
    where max_edges is not null
    group by id_type, id_value, other_type
),
reverse as (
    select other_type as id_type, other_value as id_value, id_type as other_type,
           count(distinct id_value) as linked_values, max(max_edges_reverse) as max_edges
    from pairs
    where max_edges_reverse is not null
    group by other_type, other_value, id_type
)
select id_type, id_value, other_type, linked_values, max_edges from forward where linked_values > max_edges
union all
select id_type, id_value, other_type, linked_values, max_edges from reverse where linked_values > max_edges
{%- endmacro %}

{#- Every accepted identifier of this run, numbered, with when it was first and last seen. -#}
{% macro _stitch_nodes_sql(obs) -%}
select
    row_number() over () as vid,
    id_type,
    id_value,
    first_seen_at,
    last_seen_at
from (
    select id_type, id_value, min(seen_at) as first_seen_at, max(seen_at) as last_seen_at
    from {{ obs }}
    where other_type is null and reject_reason is null and id_value is not null
    group by id_type, id_value
) as accepted
{%- endmacro %}

{#- Incremental runs: each prior cluster this run touches, as one more vertex (numbered after the nodes),
    with the vertices of its identifiers in this run. -#}
{% macro _stitch_clusters_sql(nodes, prior) -%}
with members as (
    select p.main_id, n.vid as node_vid
    from {{ prior }} as p
    inner join {{ nodes }} as n on n.id_type = p.id_type and n.id_value = p.id_value
),
touched as (
    select p.main_id, min(p.first_seen_at) as first_seen_at
    from {{ prior }} as p
    where p.main_id in (select main_id from members)
    group by p.main_id
),
numbered as (
    select
        (select coalesce(max(vid), 0) from {{ nodes }}) + row_number() over () as vid,
        main_id,
        first_seen_at
    from touched
)
select c.vid, c.main_id, c.first_seen_at, m.node_vid
from numbered as c
inner join members as m on m.main_id = c.main_id
{%- endmacro %}

{#- Edges between vertices, both directions, without the capped ones and without self loops. -#}
{% macro _stitch_edges_sql(obs, capped, nodes, clusters) -%}
with kept as (
    select o.id_type, o.id_value, o.other_type, o.other_value
    from {{ obs }} as o
    where o.other_type is not null
      and not exists (
        select 1 from {{ capped }} as c
        where c.id_type = o.id_type and c.id_value = o.id_value and c.other_type = o.other_type
      )
      and not exists (
        select 1 from {{ capped }} as c
        where c.id_type = o.other_type and c.id_value = o.other_value and c.other_type = o.id_type
      )
),
linked as (
    select distinct na.vid as a, nb.vid as b
    from kept as k
    inner join {{ nodes }} as na on na.id_type = k.id_type and na.id_value = k.id_value
    inner join {{ nodes }} as nb on nb.id_type = k.other_type and nb.id_value = k.other_value
    where na.vid <> nb.vid
    {%- if clusters is not none %}
    union
    select node_vid as a, vid as b from {{ clusters }}
    {%- endif %}
)
select a, b from linked
union
select b, a from linked
{%- endmacro %}

{#- The main_id minted for a new cluster from its earliest-seen identifier. -#}
{% macro _mint_main_id(id_type, id_value) -%}
{{ dbt.hash(dbt.concat([id_type, "':'", id_value])) }}
{%- endmacro %}

{#- Each vertex's main_id: the survivor of its component names it. -#}
{% macro _stitch_result_sql(nodes, clusters, labels) -%}
with vertices as (
    select vid, 1 as tier, first_seen_at, id_type as key_type, id_value as key_value,
           cast(null as {{ dbt.type_string() }}) as prior_main_id
    from {{ nodes }}
    {%- if clusters is not none %}
    union all
    select distinct vid, 0 as tier, first_seen_at, main_id as key_type, cast(null as {{ dbt.type_string() }}) as key_value,
           main_id as prior_main_id
    from {{ clusters }}
    {%- endif %}
),
labelled as (
    select v.*, coalesce(l.label, v.vid) as label, l.label is null as alone
    from vertices as v
    left join {{ labels }} as l on l.node = v.vid
),
ranked as (
    {#- only vertices with edges compete; a vertex alone is its own survivor -#}
    select
        label,
        tier,
        key_type,
        key_value,
        row_number() over (
            partition by label
            order by tier, first_seen_at nulls last, key_type, key_value
        ) as priority
    from labelled
    where not alone
),
survivors as (
    select label, tier, key_type, key_value from ranked where priority = 1
    union all
    select label, tier, key_type, key_value from labelled where alone
)
select
    labelled.vid,
    labelled.tier,
    labelled.prior_main_id,
    case
        when survivors.tier = 0 then survivors.key_type
        else {{ dbt_studio._mint_main_id('survivors.key_type', 'survivors.key_value') }}
    end as main_id
from labelled
inner join survivors on survivors.label = labelled.label
{%- endmacro %}

{#- Merges of prior clusters in this run (empty=true: the log's empty shape). -#}
{% macro _stitch_changes_sql(result, empty=false) -%}
select
    prior_main_id as old_main_id,
    main_id as new_main_id,
    cast('merge' as {{ dbt.type_string() }}) as reason,
    cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as changed_at,
    cast('{{ invocation_id }}' as {{ dbt.type_string() }}) as invocation_id
from {{ result }}
where {{ '1 = 0' if empty else 'tier = 0 and prior_main_id <> main_id' }}
{%- endmacro %}

{#- What screening and caps dropped in this run, with counts. -#}
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
    cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as detected_at
from {{ obs }}
where other_type is null and reject_reason is not null
group by id_type, raw_value, reject_reason, source_name
union all
select
    id_type,
    id_value as raw_value,
    {{ dbt.concat(["'max_edges: linked to '", dbt.safe_cast('linked_values', dbt.type_string()), "' '", 'other_type', "' values (cap '", dbt.safe_cast('max_edges', dbt.type_string()), "')'"]) }} as reason,
    other_type,
    cast(null as {{ dbt.type_string() }}) as source_name,
    linked_values as occurrences,
    cast(null as {{ dbt.type_timestamp() }}) as first_seen_at,
    cast(null as {{ dbt.type_timestamp() }}) as last_seen_at,
    cast({{ dbt.current_timestamp() }} as {{ dbt.type_timestamp() }}) as detected_at
from {{ capped }}
{%- endmacro %}

{#- The new output: prior rows (re-pointed where their cluster merged) and this run's identifiers. -#}
{% macro _stitch_output_sql(nodes, result, prior) -%}
with run_ids as (
    select r.main_id, n.id_type, n.id_value, n.first_seen_at, n.last_seen_at
    from {{ nodes }} as n
    inner join {{ result }} as r on r.vid = n.vid
)
{%- if prior is not none %},
moved as (
    select prior_main_id, main_id from {{ result }} where tier = 0 and prior_main_id <> main_id
),
all_ids as (
    select coalesce(m.main_id, p.main_id) as main_id, p.id_type, p.id_value, p.first_seen_at, p.last_seen_at
    from {{ prior }} as p
    left join moved as m on m.prior_main_id = p.main_id
    union all
    select main_id, id_type, id_value, first_seen_at, last_seen_at from run_ids
)
select main_id, id_type, id_value, min(first_seen_at) as first_seen_at, max(last_seen_at) as last_seen_at
from all_ids
group by main_id, id_type, id_value
{%- else %}
select main_id, id_type, id_value, first_seen_at, last_seen_at
from run_ids
{%- endif %}
{%- endmacro %}
