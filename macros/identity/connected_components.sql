{#-
    Connected components of an undirected graph by Large-Star / Small-Star (Kiveris et al., 2014).

    `edges` holds integer pairs (a, b), both directions, no self loops. Each round rewrites the edge set
    twice — large-star links every larger neighbour of a node to its smallest neighbour, small-star links
    every smaller neighbour to the smallest — until every component is a star around its minimum. The
    number of rounds grows with the logarithm of the component size, not with its diameter, so long chains
    (even with ids increasing along them) converge in a handful of rounds. The loop stops when converged and
    raises, naming the model, if `max_rounds` is reached: a partial labelling is never written.

    Writes `labels` (node, label) where label = the smallest node of the component (nodes with edges only).
    Returns the number of rounds.
-#}
{% macro connected_components(edges, labels, max_rounds, model_name) %}
    {{ return(adapter.dispatch('connected_components', 'dbt_studio')(edges, labels, max_rounds, model_name)) }}
{% endmacro %}

{% macro default__connected_components(edges, labels, max_rounds, model_name) %}
    {%- set work = edges.incorporate(path={'identifier': edges.identifier ~ '_w'}) -%}
    {%- set current = edges -%}
    {%- set state = {'rounds': 0, 'converged': false} -%}
    {%- for round in range(1, max_rounds + 1) -%}
        {%- do state.update({'rounds': round}) -%}
        {%- do run_query(dbt_studio._create_table_as(work, dbt_studio._large_star_sql(current))) -%}
        {%- do run_query(dbt_studio._create_table_as(current, dbt_studio._small_star_sql(work))) -%}
        {%- if dbt_studio._is_star_forest(current) -%}
            {%- do state.update({'converged': true}) -%}
            {%- break -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do adapter.drop_relation(work) -%}
    {%- if not state.converged -%}
        {{ exceptions.raise_compiler_error("dbt_studio: connected components of model '" ~ model_name ~ "' did not converge in " ~ state.rounds ~ " rounds (max_rounds = " ~ max_rounds ~ "); raise the `max_rounds` config or var dbt_studio_stitch_max_rounds. Nothing was written.") }}
    {%- endif -%}
    {%- do run_query(dbt_studio._create_table_as(labels, dbt_studio._star_labels_sql(current))) -%}
    {{ return(state.rounds) }}
{% endmacro %}

{% macro _large_star_sql(edges) -%}
with smallest as (
    select a, least(a, min(b)) as m
    from {{ edges }}
    group by a
),
linked as (
    select e.b as a, s.m as b
    from {{ edges }} as e
    inner join smallest as s on e.a = s.a
    where e.b > e.a
)
select a, b from linked
union
select b, a from linked
{%- endmacro %}

{% macro _small_star_sql(edges) -%}
with smallest as (
    select a, min(b) as m
    from {{ edges }}
    where b < a
    group by a
),
linked as (
    select e.b as a, s.m as b
    from {{ edges }} as e
    inner join smallest as s on e.a = s.a
    where e.b < e.a and e.b <> s.m
    union all
    select a, m as b from smallest
)
{#- every edge has a larger end, whose smaller neighbours are all re-linked above: nothing is lost #}
select a, b from linked
union
select b, a from linked
{%- endmacro %}

{#- A star forest: every node has at most one smaller neighbour, and a node with one has no larger ones. -#}
{% macro _is_star_forest(edges) %}
    {%- set query -%}
        select count(*) from (
            select
                a,
                sum(case when b < a then 1 else 0 end) as smaller,
                sum(case when b > a then 1 else 0 end) as larger
            from {{ edges }}
            group by a
        ) as degrees
        where smaller > 1 or (smaller = 1 and larger > 0)
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0] | int == 0) }}
{% endmacro %}

{% macro _star_labels_sql(edges) -%}
select a as node, least(a, min(b)) as label
from {{ edges }}
group by a
{%- endmacro %}
