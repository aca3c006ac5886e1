{#-
    dbt_studio.with_main_id(id_graph, relation, ids, normalize={}, where=none)

    Every row of `relation` plus its `main_id` from the id graph (rows none of whose ids is in the graph are
    dropped). `ids` and `normalize` as for entity_features inputs. Used by the master models of the example;
    entity_features maps its inputs the same way (dbt_studio._rows_with_main_id).
-#}
{% macro with_main_id(id_graph, relation, ids, normalize={}, where=none) %}
    {{ return(adapter.dispatch('with_main_id', 'dbt_studio')(id_graph, relation, ids, normalize, where)) }}
{% endmacro %}

{% macro default__with_main_id(id_graph, relation, ids, normalize={}, where=none) %}
    {%- set spec = {'relation': relation, 'ids': ids, 'normalize': normalize} -%}
    {%- set input = dbt_studio._input_spec('with_main_id', spec, "dbt_studio.with_main_id in model '"
                                           ~ (this.name if this is defined and this is not none else 'unknown')
                                           ~ "'") -%}
    {%- do input.update({'filter': where}) -%}
    {{ return(dbt_studio._rows_with_main_id(id_graph, input)) }}
{% endmacro %}


{#- The rows of one input with main_id (coalesce over its ids, each normalised as in the id graph). -#}
{% macro _rows_with_main_id(id_graph, input) %}
    {%- set conditions = [] -%}
    {%- if input.get('as_of_filter') -%}{%- do conditions.append(input.as_of_filter) -%}{%- endif -%}
    {%- if input.get('filter') -%}{%- do conditions.append('(' ~ input.filter ~ ')') -%}{%- endif -%}
    {%- set main_ids = [] -%}
    {%- for id in input.ids -%}{%- do main_ids.append('ids_' ~ loop.index ~ '.main_id') -%}{%- endfor -%}
    {%- set main_id = main_ids[0] if main_ids | length == 1 else 'coalesce(' ~ main_ids | join(', ') ~ ')' -%}
    {%- set sql -%}
select
    {{ main_id }} as main_id,
    {%- if input.get('columns') %}
    {%- for column in input.columns %}
    src.{{ column }}{{ "," if not loop.last }}
    {%- endfor %}
    {%- else %}
    src.*
    {%- endif %}
from {{ input.relation }} as src
{%- for id in input.ids %}
left join {{ id_graph }} as ids_{{ loop.index }}
    on ids_{{ loop.index }}.id_type = '{{ id.type }}'
    and ids_{{ loop.index }}.id_value = {{ dbt_studio._input_id_value(input, id) }}
{%- endfor %}
where {{ main_id }} is not null
{%- for c in conditions %}
    and {{ c }}
{%- endfor %}
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}


{#- One id of an input row as the id graph holds it: cast to a string, normalised as the stitcher does. -#}
{% macro _input_id_value(input, id) %}
    {%- set raw = 'cast(' ~ ('src.' if id.column else '') ~ id.expr ~ ' as ' ~ dbt.type_string() ~ ')' -%}
    {{ return(dbt_studio._normalized_id(id.type, raw, input.id_types)) }}
{% endmacro %}


{#- The input's columns its vars use (so window and aggregate passes carry no others), when the relation can be
    inspected (at run time, the relation built); else none, meaning all. -#}
{% macro _used_columns(input) %}
    {%- if not execute or input.relation is string or input.relation.identifier is not defined -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(input.relation) -%}
    {%- set used = [] -%}
    {%- for column in columns if column.name | lower in input.tokens -%}
        {%- set plain = modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', column.name) -%}
        {%- do used.append(column.name if plain else adapter.quote(column.name)) -%}
    {%- endfor -%}
    {{ return(used if used else none) }}
{% endmacro %}


{#- One input as a plain dict: name, relation, ids [{type, expr, column}], timestamp SQL, id_types for hygiene.
    `where` names the caller in errors. -#}
{% macro _input_spec(name, input, where='') %}
    {%- set where = where or ("dbt_studio.entity_features in model '" ~ this.name ~ "', input '" ~ name ~ "'") -%}
    {%- if input is not mapping or 'relation' not in input or 'ids' not in input -%}
        {{ exceptions.raise_compiler_error(where ~ ": each input needs `relation` and `ids`") }}
    {%- endif -%}
    {%- do dbt_studio._check_keys(where, input, ['relation', 'ids', 'timestamp', 'normalize'], what='an input') -%}
    {%- set ids = [] -%}
    {%- if input.ids is mapping -%}
        {%- for id_type, expr in input.ids.items() -%}
            {%- set column = modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', expr) is not none -%}
            {%- do ids.append({'type': id_type, 'expr': expr, 'column': column}) -%}
        {%- endfor -%}
    {%- elif input.ids is string -%}
        {%- do ids.append({'type': input.ids, 'expr': input.ids, 'column': true}) -%}
    {%- else -%}
        {%- for column in input.ids -%}
            {%- do ids.append({'type': column, 'expr': column, 'column': true}) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if ids | length == 0 -%}
        {{ exceptions.raise_compiler_error(where ~ ": `ids` is empty") }}
    {%- endif -%}
    {%- set id_types = {} -%}
    {%- for id_type, template in (input.get('normalize') or {}).items() -%}
        {%- do id_types.update({id_type: {'normalize': template}}) -%}
    {%- endfor -%}
    {%- set ts = input.get('timestamp') -%}
    {%- set plain_ts = ts and modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', ts) -%}
    {{ return({
        'name': name,
        'cte': dbt_studio._input_cte(name),
        'relation': input.relation,
        'ids': ids,
        'id_types': id_types,
        'timestamp': ts,
        'ts': ('src.' ~ ts if plain_ts else ts) if ts else none,
    }) }}
{% endmacro %}


{#- The CTE name prefix of input `name` (plain or grouped): `input_` and the name with anything but letters,
    digits and _ replaced. -#}
{% macro _input_cte(name) %}
    {{ return('input_' ~ modules.re.sub('[^A-Za-z0-9_]', '_', name | lower)) }}
{% endmacro %}
