{#-
    dbt_studio.entity_features(id_graph=ref(...), inputs={...}, vars=[...], features=[...], as_of=none)

    A Customer 360 table: one row per `main_id` of the id graph with the listed `features` and `valid_at`
    (= `as_of`). Every input row is mapped to its `main_id` through the id graph (its id values normalised as the
    stitcher normalises them; all ids of a row belong to one cluster, so the first that is found wins).

    inputs: {name: {relation, ids: [col, ...] | {id_type: column or SQL}, timestamp?, normalize?: {id_type: SQL}}}
            or a grouped input {from: an earlier input, group_by: [col, ...], columns: {name: aggregate SQL},
            timestamp?}: one row per person and group (features/_grouped.sql).
    vars (in order; a var may only use vars listed before it):
      entity var   {name, select: aggregate SQL, from: input, where?, window_days?, order_by?, default?}
                   `first_value(x)` / `last_value(x)` with `order_by` (a column, 'col desc', or a list) picks the
                   value of the first / last row (ties broken by the value itself). Everyone with no matching
                   row (no rows, or only rows the where / window / as_of remove) gets `default`, else what
                   `select` gives over no rows (0 for a count, null for a sum; see _entity_var_value).
      derived var  {name, select: SQL over earlier entity / derived / identifier vars}     (no `from`)
      input var    {name, kind: 'input', select: SQL, from: input, partition_by?: [...], order_by?: [...]}
                   a column on a copy of the input (a window when partition_by / order_by is given); later
                   entity vars of that input can aggregate it.
      identifier   {name, id_type, pick?: most_recent | first_seen | most_frequent, default?}
                   one of the person's ids of that type from the id graph (features/_identifiers.sql).
    Unknown keys are compile-time errors with a did-you-mean.
    `{{ as_of }}` in any SQL string is replaced by the as_of timestamp.
    as_of: see dbt_studio._as_of_sql (the argument, else the `dbt_studio_as_of` var, else now). Rows of an
    input with a timestamp later than as_of are ignored; `window_days: N` keeps rows with
    as_of - N days <= timestamp <= as_of.

    All entity vars of one input go into one GROUP BY (their `where` and window pushed into the aggregates);
    only aggregates that cannot take a pushed condition (e.g. with several arguments) get a pass of their own.
    The plan is made by dbt_studio._feature_plan (features/_plan.sql).
-#}
{% macro entity_features(id_graph, inputs, vars, features, as_of=none) %}
    {{ return(adapter.dispatch('entity_features', 'dbt_studio')(id_graph, inputs, vars, features, as_of)) }}
{% endmacro %}

{% macro default__entity_features(id_graph, inputs, vars, features, as_of=none) %}
    {%- set plan = dbt_studio._feature_plan(inputs, vars, features, as_of) -%}
with
{%- for input in plan.inputs %}
{%- if input.grouped %}
{{ input.cte }}__rows as (
{{ dbt_studio._grouped_rows(input) | indent(4, true) }}
),
{%- else %}
{%- do input.update({'columns': dbt_studio._used_columns(input)}) %}
{{ input.cte }}__rows as (
{{ dbt_studio._rows_with_main_id(id_graph, input) | indent(4, true) }}
),
{%- endif %}
{%- for layer in input.layers %}
{{ input.cte }}__vars_{{ loop.index }} as (
    select
        *,
        {%- for v in layer %}
        {{ v.sql }} as {{ v.name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ input.source }}
    {%- set _ = input.update({'source': input.cte ~ '__vars_' ~ loop.index}) %}
),
{%- endfor %}
{%- if input.ranks %}
{{ input.cte }}__ranked as (
    select
        *,
        {%- for r in input.ranks %}
        row_number() over (
            partition by main_id{{ ", case when " ~ r.cond ~ " then 1 else 0 end" if r.cond }}
            order by {{ r.order }}
        ) as {{ r.name }}__rn{{ "," if not loop.last }}
        {%- endfor %}
    from {{ input.source }}
    {%- set _ = input.update({'source': input.cte ~ '__ranked'}) %}
),
{%- endif %}
{%- for pass in input.passes %}
{{ pass.cte }} as (
    select
        main_id,
        {%- for v in pass.vars %}
        {{ v.sql }} as {{ v.name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ input.source }}
    {%- if pass.where %}
    where {{ pass.where }}
    {%- endif %}
    group by main_id
),
{%- endfor %}
{%- if input.no_rows %}
{{ input.cte }}__no_rows as (
    select
        {%- for v in input.no_rows %}
        {{ v.sql }} as {{ v.name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ input.source }}
    where 1 = 0
),
{%- endif %}
{%- endfor %}
{%- if plan.identifiers %}
{{ dbt_studio._identifier_ctes(id_graph, plan) | trim }}
{%- endif %}
entities as (
    select distinct main_id
    from {{ id_graph }}
),
entity_vars as (
    select
        entities.main_id{{ "," if plan.entity_vars }}
        {%- for v in plan.entity_vars %}
        {{ v.value }} as {{ v.name }}{{ "," if not loop.last }}
        {%- endfor %}
    from entities
    {%- for join in plan.joins %}
    {{ join }}
    {%- endfor %}
){{ "," if plan.derived_layers }}
{%- for layer in plan.derived_layers %}
derived_vars_{{ loop.index }} as (
    select
        *,
        {%- for v in layer %}
        {{ v.sql }} as {{ v.name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ 'entity_vars' if loop.first else 'derived_vars_' ~ (loop.index - 1) }}
){{ "," if not loop.last }}
{%- endfor %}

select
    main_id,
    {%- for name in features %}
    {{ name }},
    {%- endfor %}
    {{ plan.as_of }} as valid_at
from {{ 'derived_vars_' ~ (plan.derived_layers | length) if plan.derived_layers else 'entity_vars' }}
{% endmacro %}
