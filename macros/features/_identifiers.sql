{#-
    Identifier vars of entity_features: per id type, the one value of each person's ids to keep as a column of the
    Customer 360 (an email or phone to sync), picked from the id graph (main_id, id_type, id_value, first_seen_at,
    last_seen_at):

      {'name': 'email', 'id_type': 'email', 'pick': 'most_recent'}

      most_recent    the id with the latest last_seen_at
      first_seen     the id with the earliest first_seen_at
      most_frequent  the id on the most rows of the inputs that carry this id type (rows up to as_of), then the
                     latest last_seen_at
    Ties go to the smallest value; ids the graph has no time for sort last. Ids first seen after as_of are left out
    (they did not exist yet). A person without an id of the type gets `default` (else NULL).
-#}

{#- One identifier var into the plan. -#}
{% macro _plan_identifier_var(at, v, specs, plan) %}
    {%- set picks = ['most_recent', 'first_seen', 'most_frequent'] -%}
    {%- set pick = v.get('pick') or 'most_recent' -%}
    {%- if v.id_type is not string or not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', v.id_type) -%}
        {{ exceptions.raise_compiler_error(at ~ ": `id_type` must name an id type of the id graph (e.g. 'email')") }}
    {%- endif -%}
    {%- if pick not in picks -%}
        {%- set close = dbt_studio._closest(pick | string, picks) -%}
        {%- set hint = "did you mean '" ~ close ~ "'?" if close else picks | join(', ') -%}
        {{ exceptions.raise_compiler_error(at ~ ": unknown pick '" ~ pick ~ "' (" ~ hint ~ ")") }}
    {%- endif -%}
    {%- if pick == 'most_frequent' -%}
        {%- set carried = [] -%}
        {%- for input in specs.values() -%}
            {%- for id in input.ids if id.type == v.id_type -%}
                {%- do carried.append({'input': input, 'id': id}) -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- if not carried -%}
            {{ exceptions.raise_compiler_error(at ~ ": pick 'most_frequent' counts the rows of the inputs with "
                                               ~ "id type '" ~ v.id_type ~ "', and no input has it (inputs: "
                                               ~ specs.keys() | list | join(', ') ~ ")") }}
        {%- endif -%}
        {%- if v.id_type not in plan.counted | map(attribute='id_type') | list -%}
            {%- do plan.counted.append({'id_type': v.id_type, 'carried': carried}) -%}
        {%- endif -%}
    {%- endif -%}
    {%- do plan.identifiers.append({'name': v.name, 'id_type': v.id_type, 'pick': pick}) -%}
    {%- set value = 'identifiers.' ~ v.name -%}
    {%- set value = 'coalesce(' ~ value ~ ', ' ~ v.default ~ ')' if v.get('default') is not none else value -%}
    {%- do plan.entity_vars.append({'name': v.name, 'value': value}) -%}
    {%- do plan.seen.update({v.name | lower: {'kind': 'identifier', 'from': none}}) -%}
{% endmacro %}


{#- The CTEs that pick the identifiers (`identifier_counts` when one is most_frequent, `identifier_values`,
    `identifiers`: one row per main_id with a column per identifier var), each followed by a comma. -#}
{% macro _identifier_ctes(id_graph, plan) %}
    {%- set types = plan.identifiers | map(attribute='id_type') | unique | list -%}
    {%- set picks = plan.identifiers | map(attribute='pick') | unique | list -%}
    {%- set orders = {
        'most_recent': 'ids.last_seen_at desc nulls last, ids.id_value',
        'first_seen': 'ids.first_seen_at asc nulls last, ids.id_value',
        'most_frequent': 'coalesce(counts.n_rows, 0) desc, ids.last_seen_at desc nulls last, ids.id_value',
    } -%}
    {%- set sql -%}
{%- if plan.counted %}
identifier_counts as (
    select main_id, id_type, id_value, count(*) as n_rows
    from (
        {%- for counted in plan.counted %}
        {%- set outer = loop %}
        {%- for c in counted.carried %}
        {%- if not (outer.first and loop.first) %}
        union all
        {%- endif %}
        select ids.main_id, ids.id_type, ids.id_value
        from {{ c.input.relation }} as src
        inner join {{ id_graph }} as ids
            on ids.id_type = '{{ counted.id_type }}'
            and ids.id_value = {{ dbt_studio._input_id_value(c.input, c.id) }}
        {%- if c.input.get('as_of_filter') %}
        where {{ c.input.as_of_filter }}
        {%- endif %}
        {%- endfor %}
        {%- endfor %}
    ) as carried
    group by main_id, id_type, id_value
),
{%- endif %}
identifier_values as (
    select
        ids.main_id,
        ids.id_type,
        ids.id_value,
        {%- for pick in picks %}
        row_number() over (partition by ids.main_id, ids.id_type order by {{ orders[pick] }}) as {{ pick }}_rank
        {{- "," if not loop.last }}
        {%- endfor %}
    from {{ id_graph }} as ids
    {%- if plan.counted %}
    left join identifier_counts as counts
        on counts.main_id = ids.main_id and counts.id_type = ids.id_type and counts.id_value = ids.id_value
    {%- endif %}
    where ids.id_type in ({% for t in types %}'{{ t }}'{{ ", " if not loop.last }}{% endfor %})
        and (ids.first_seen_at is null or ids.first_seen_at <= {{ plan.as_of }})
),
identifiers as (
    select
        main_id,
        {%- for i in plan.identifiers %}
        max(case when id_type = '{{ i.id_type }}' and {{ i.pick }}_rank = 1 then id_value end) as {{ i.name }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from identifier_values
    group by main_id
),
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}
