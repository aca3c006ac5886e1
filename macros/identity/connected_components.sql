{#-
    Connected components of an undirected graph by Large-Star / Small-Star (Kiveris et al., 2014).

    `edges` holds integer pairs (a, b), both directions, no self loops. Each round rewrites the edge set
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
    {%- set state = {'rounds': 0, 'converged': false, 'current': edges, 'spare': spare} -%}
    {%- set empty_labels = 'select a as node, b as label from ' ~ edges ~ ' where 1 = 0' -%}
    {%- do run_query(dbt_studio._create_work_table(labels, empty_labels)) -%}
    {%- for round in range(1, max_rounds + 2) -%}
        {%- set current, spare = state.current, state.spare -%}
        {%- if dbt_studio._is_empty(current) -%}
            {%- do state.update({'converged': true}) -%}
            {%- break -%}
        {%- elif round > max_rounds -%}
            {%- break -%}
        {%- endif -%}
        {%- do state.update({'rounds': round}) -%}
        {%- do dbt_studio._run_statements([
            dbt_studio._create_work_table(spare, dbt_studio._large_star_sql(current)),
            dbt_studio._create_work_table(current, dbt_studio._small_star_sql(spare)),
            dbt_studio._create_work_table(centers, dbt_studio._finished_star_centers_sql(current)),
            dbt_studio._insert_into(labels, dbt_studio._finished_star_labels_sql(current, centers)),
            dbt_studio._create_work_table(spare, dbt_studio._unfinished_edges_sql(current, centers)),
        ]) -%}
        {%- do state.update({'current': spare, 'spare': current}) -%}
    {%- endfor -%}
    {%- for relation in [edges, spare, centers] -%}
        {%- do adapter.drop_relation(relation) -%}
    {%- endfor -%}
    {%- if not state.converged -%}
        {{ exceptions.raise_compiler_error("dbt_studio: connected components of model '" ~ model_name
                                           ~ "' did not converge in " ~ state.rounds ~ " rounds (max_rounds = "
                                           ~ max_rounds ~ "); raise the `max_rounds` meta setting or the var "
                                           ~ "dbt_studio_stitch_max_rounds. Nothing was written.") }}
    {%- endif -%}
    {{ return(state.rounds) }}
{% endmacro %}

{#- Both star steps emit each new edge as (larger, smaller) only, so one DISTINCT over them is enough: the
    reversed copy cannot hold a duplicate (half the rows a UNION of both directions would sort or hash). -#}
{% macro _large_star_sql(edges) -%}
with smallest as (
    select a, least(a, min(b)) as m
    from {{ edges }}
    group by a
),
{#- b > a >= m: every row is (larger, smaller) -#}
pairs as {{ dbt_studio._materialized_cte() }}(
    select distinct e.b as a, s.m as b
    from {{ edges }} as e
    inner join smallest as s on e.a = s.a
    where e.b > e.a
)
select a, b from pairs
union all
select b, a from pairs
{%- endmacro %}

{% macro _small_star_sql(edges) -%}
with smallest as (
    select a, min(b) as m
    from {{ edges }}
    where b < a
    group by a
),
{#- every edge has a larger end, whose smaller neighbours are all re-linked here: nothing is lost; and every
    row is (larger, smaller): b > m, a > m -#}
pairs as {{ dbt_studio._materialized_cte() }}(
    select distinct a, b
    from (
        select e.b as a, s.m as b
        from {{ edges }} as e
        inner join smallest as s on e.a = s.a
        where e.b < e.a and e.b <> s.m
        union all
        select a, m as b from smallest
    ) as linked
)
select a, b from pairs
union all
select b, a from pairs
{%- endmacro %}

{#- Centres of finished stars: no smaller neighbour, and every neighbour's only neighbour is the centre. Each
    edge is grouped under its smaller end c, with its first end's degree and smallest neighbour (one aggregate,
    one join): c is a finished centre when its own rows say it has no smaller neighbour and the rows of the other
    ends say each has one neighbour. A node whose edges all lead to smaller nodes heads no group. -#}
{% macro _finished_star_centers_sql(edges) -%}
with ends as (
    select a, count(*) as degree, min(b) as smallest
    from {{ edges }}
    group by a
)
select least(e.a, e.b) as center
from {{ edges }} as e
inner join ends as n on n.a = e.a
group by least(e.a, e.b)
having min(case when e.a < e.b and n.smallest > e.a then 1
                when e.a > e.b and n.degree = 1 then 1
                else 0 end) = 1
{%- endmacro %}

{% macro _finished_star_labels_sql(edges, centers) -%}
select center as node, center as label from {{ centers }}
union all
select e.b as node, e.a as label
from {{ edges }} as e
inner join {{ centers }} as c on c.center = e.a
{%- endmacro %}

{#- An edge of a finished star always has the centre as its smaller end. (An outer join, not NOT EXISTS: DuckDB
    plans the correlated form on least() about five times slower.) -#}
{% macro _unfinished_edges_sql(edges, centers) -%}
select e.a, e.b
from {{ edges }} as e
left join {{ centers }} as c on c.center = least(e.a, e.b)
where c.center is null
{%- endmacro %}

{% macro _is_empty(relation) %}
    {%- set probe = run_query('select count(*) from (select 1 as x from ' ~ relation ~ ' limit 1) as probe') -%}
    {{ return(probe.columns[0].values()[0] | int == 0) }}
{% endmacro %}
