{#-
    Connected components of an undirected graph by Large-Star / Small-Star (Kiveris et al., 2014).

    `edges` holds integer pairs (a, b), each edge once as a > b, no self loops. Each round rewrites the edge set
    twice — large-star links every larger neighbour of a node to its smallest neighbour, small-star links
    every smaller neighbour to the smallest — so components contract into stars around their minimum. The
    number of rounds grows with the logarithm of the component size, not with its diameter, so long chains
    (even with ids increasing along them) converge in a handful of rounds.

    After each round every component that has become a star is finished: its labels are written out and
    its edges leave the working set. Most people's identity graphs are tiny, so after the first round only
    the few large components are still being rewritten. The loop ends when no edge is left, and raises,
    naming the model, if `max_rounds` is reached: a partial labelling is never written.

    Writes `labels` (node, label), label = the smallest node of the component (nodes with edges only).
    Returns the number of rounds. `edges` is consumed.
-#}
{% macro connected_components(edges, labels, max_rounds, model_name) %}
    {{ return(adapter.dispatch('connected_components', 'dbt_studio')(edges, labels, max_rounds, model_name)) }}
{% endmacro %}

{% macro default__connected_components(edges, labels, max_rounds, model_name) %}
    {%- set spare = edges.incorporate(path={'identifier': edges.identifier ~ '_w'}) -%}
    {%- set centers = edges.incorporate(path={'identifier': edges.identifier ~ '_c'}) -%}
    {%- set empty_labels = 'select a as node, b as label from ' ~ edges ~ ' where 1 = 0' -%}
    {%- do run_query(dbt_studio._create_work_table(labels, empty_labels)) -%}
    {%- set state = {'rounds': 0, 'converged': dbt_studio._is_empty(edges), 'current': edges, 'spare': spare} -%}
    {%- for round in range(1, max_rounds + 1) if not state.converged -%}
        {%- set current, spare = state.current, state.spare -%}
        {#- the round ends with the probe of the edges it leaves: on DuckDB the same call -#}
        {%- set left = dbt_studio._run_statements([
            dbt_studio._create_work_table(spare, dbt_studio._large_star_sql(current)),
            dbt_studio._create_work_table(current, dbt_studio._small_star_sql(spare)),
            dbt_studio._create_work_table(centers, dbt_studio._finished_star_centers_sql(current)),
            dbt_studio._insert_into(labels, dbt_studio._finished_star_labels_sql(current, centers)),
            dbt_studio._create_work_table(spare, dbt_studio._unfinished_edges_sql(current, centers)),
            dbt_studio._is_empty_sql(spare),
        ]) -%}
        {%- do state.update({'rounds': round, 'current': spare, 'spare': current,
                             'converged': dbt_studio._no_rows(left)}) -%}
    {%- endfor -%}
    {%- do dbt_studio._drop_work_tables([edges, spare, centers]) -%}
    {%- if not state.converged -%}
        {{ exceptions.raise_compiler_error("dbt_studio: connected components of model '" ~ model_name
                                           ~ "' did not converge in " ~ state.rounds ~ " rounds (max_rounds = "
                                           ~ max_rounds ~ "); raise the `max_rounds` meta setting or the var "
                                           ~ "dbt_studio_stitch_max_rounds. Nothing was written.") }}
    {%- endif -%}
    {{ return(state.rounds) }}
{% endmacro %}

{#- Large-star: every edge (v, u), v > u, becomes (v, m(u)), m(u) the smallest of u and its neighbours. u's smaller
    neighbours are in its own rows as the larger end, so one aggregate over those rows gives m(u) (u itself when it
    has none), and each edge yields one row, still (larger, smaller). -#}
{% macro _large_star_sql(edges) -%}
with smallest as (
    select a as node, min(b) as m
    from {{ edges }}
    group by a
)
select distinct e.a, coalesce(s.m, e.b) as b
from {{ edges }} as e
left join smallest as s on s.node = e.b
{%- endmacro %}

{#- Small-star: each node u with smaller neighbours links them, and itself, to the smallest of them, m(u): every
    row is (larger, smaller) since m(u) is below the others. -#}
{% macro _small_star_sql(edges) -%}
with smallest as (
    select a, min(b) as m
    from {{ edges }}
    group by a
)
select distinct a, b
from (
    select e.b as a, s.m as b
    from {{ edges }} as e
    inner join smallest as s on s.a = e.a
    where e.b <> s.m
    union all
    select a, m as b from smallest
) as linked
{%- endmacro %}

{#- Centres of finished stars: a node c with no smaller neighbour (never the larger end of a row) whose larger
    neighbours are all leaves: one neighbour each, c (one row as the larger end, none as the smaller). Counted with
    one aggregate per end over the edges, the rest over nodes. -#}
{% macro _finished_star_centers_sql(edges) -%}
with as_larger as (
    select a as node, count(*) as smaller_neighbours, min(b) as smallest
    from {{ edges }}
    group by a
),
as_smaller as (
    select b as node, count(*) as larger_neighbours
    from {{ edges }}
    group by b
),
leaves as (
    select l.smallest as center, count(*) as leaves
    from as_larger as l
    left join as_smaller as s on s.node = l.node
    where l.smaller_neighbours = 1 and s.node is null
    group by l.smallest
)
select c.node as center
from as_smaller as c
inner join leaves as f on f.center = c.node
left join as_larger as l on l.node = c.node
where f.leaves = c.larger_neighbours and l.node is null
{%- endmacro %}

{% macro _finished_star_labels_sql(edges, centers) -%}
select center as node, center as label from {{ centers }}
union all
select e.a as node, e.b as label
from {{ edges }} as e
inner join {{ centers }} as c on c.center = e.b
{%- endmacro %}

{#- An edge of a finished star always has the centre as its smaller end. -#}
{% macro _unfinished_edges_sql(edges, centers) -%}
select e.a, e.b
from {{ edges }} as e
left join {{ centers }} as c on c.center = e.b
where c.center is null
{%- endmacro %}

{% macro _is_empty(relation) %}
    {{ return(dbt_studio._no_rows(run_query(dbt_studio._is_empty_sql(relation)))) }}
{% endmacro %}

{#- One row: 0 when `relation` is empty, 1 otherwise (reads at most one row). -#}
{% macro _is_empty_sql(relation) -%}
select count(*) from (select 1 as x from {{ relation }} limit 1) as probe
{%- endmacro %}

{% macro _no_rows(probe) %}
    {{ return(probe.columns[0].values()[0] | int == 0) }}
{% endmacro %}
