{#-
    dbt_studio.entity_features(id_graph=ref(...), inputs={...}, vars=[...], features=[...], as_of=none)

    A Customer 360 table: one row per `main_id` of the id graph with the listed `features` and `valid_at`
    (= `as_of`). Every input row is mapped to its `main_id` through the id graph (its id values normalised as the
    stitcher normalises them; all ids of a row belong to one cluster, so the first that is found wins).

    inputs: {name: {relation, ids: [col, ...] | {id_type: column or SQL}, timestamp?, normalize?: {id_type: SQL}}}
    vars (in order; a var may only use vars listed before it):
      entity var   {name, select: aggregate SQL, from: input, where?, window_days?, order_by?, default?}
                   `first_value(x)` / `last_value(x)` with `order_by` (a column, 'col desc', or a list) picks the
                   value of the first / last row (ties broken by the value itself). People with no rows get
                   `default` (0 for a single count(...), else null).
      derived var  {name, select: SQL over earlier entity / derived vars}            (no `from`)
      input var    {name, kind: 'input', select: SQL, from: input, partition_by?: [...], order_by?: [...]}
                   a column on a copy of the input (a window when partition_by / order_by is given); later
                   entity vars of that input can aggregate it.
    `{{ as_of }}` in any SQL string is replaced by the as_of timestamp.
    as_of: a timestamp literal ('2026-01-01') or SQL expression; default the current timestamp. Rows of an
    input with a timestamp later than as_of are ignored; `window_days: N` keeps rows with
    as_of - N days <= timestamp <= as_of.

    All entity vars of one input go into one GROUP BY (their `where` and window pushed into the aggregates);
    only aggregates that cannot take a pushed condition (e.g. with several arguments) get a pass of their own.
-#}
{% macro entity_features(id_graph, inputs, vars, features, as_of=none) %}
    {{ return(adapter.dispatch('entity_features', 'dbt_studio')(id_graph, inputs, vars, features, as_of)) }}
{% endmacro %}

{% macro default__entity_features(id_graph, inputs, vars, features, as_of=none) %}
    {%- set plan = dbt_studio._feature_plan(inputs, vars, features, as_of) -%}
with
{%- for input in plan.inputs %}
{%- do input.update({'columns': dbt_studio._used_columns(input)}) %}
{{ input.cte }}__rows as (
{{ dbt_studio._rows_with_main_id(id_graph, input) | indent(4, true) }}
),
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
        row_number() over (partition by main_id{{ ", case when " ~ r.cond ~ " then 1 else 0 end" if r.cond }} order by {{ r.order }}) as {{ r.name }}__rn{{ "," if not loop.last }}
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
{%- endfor %}
entities as (
    select distinct main_id
    from {{ id_graph }}
),
entity_vars as (
    select
        entities.main_id{{ "," if plan.entity_vars }}
        {%- for v in plan.entity_vars %}
        {{ "coalesce(" ~ v.pass ~ "." ~ v.name ~ ", " ~ v.default ~ ")" if v.default is not none else v.pass ~ "." ~ v.name }} as {{ v.name }}{{ "," if not loop.last }}
        {%- endfor %}
    from entities
    {%- for pass in plan.passes %}
    left join {{ pass }} on {{ pass }}.main_id = entities.main_id
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


{#-
    dbt_studio.with_main_id(id_graph, relation, ids, normalize={}, where=none)

    Every row of `relation` plus its `main_id` from the id graph (rows none of whose ids is in the graph are
    dropped). `ids` and `normalize` as for entity_features inputs. Used by the master models of the example.
-#}
{% macro with_main_id(id_graph, relation, ids, normalize={}, where=none) %}
    {%- set input = dbt_studio._input_spec('with_main_id', {'relation': relation, 'ids': ids, 'normalize': normalize}) -%}
    {%- do input.update({'filter': where}) -%}
    {{ return(dbt_studio._rows_with_main_id(id_graph, input)) }}
{% endmacro %}


{#- The rows of one input with main_id (coalesce over its ids, each normalised as in the id graph). -#}
{% macro _rows_with_main_id(id_graph, input) %}
    {%- set string = dbt.type_string() -%}
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
    and ids_{{ loop.index }}.id_value = {{ dbt_studio._normalized_id(id.type, 'cast(src.' ~ id.expr ~ ' as ' ~ string ~ ')' if id.column else 'cast(' ~ id.expr ~ ' as ' ~ string ~ ')', input.id_types) }}
{%- endfor %}
where {{ main_id }} is not null
{%- for c in conditions %}
    and {{ c }}
{%- endfor %}
    {%- endset -%}
    {{ return(sql) }}
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
        {%- do used.append(column.name if modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', column.name) else adapter.quote(column.name)) -%}
    {%- endfor -%}
    {{ return(used if used else none) }}
{% endmacro %}


{#- One input as a plain dict: name, relation, ids [{type, expr, column}], timestamp SQL, id_types for hygiene. -#}
{% macro _input_spec(name, input, where='') %}
    {%- set where = where or ("dbt_studio.entity_features in model '" ~ this.name ~ "', input '" ~ name ~ "'") -%}
    {%- if input is not mapping or 'relation' not in input or 'ids' not in input -%}
        {{ exceptions.raise_compiler_error(where ~ ": each input needs `relation` and `ids`") }}
    {%- endif -%}
    {%- set ids = [] -%}
    {%- if input.ids is mapping -%}
        {%- for id_type, expr in input.ids.items() -%}
            {%- do ids.append({'type': id_type, 'expr': expr, 'column': modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', expr) is not none}) -%}
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
    {{ return({
        'name': name,
        'cte': 'input_' ~ modules.re.sub('[^A-Za-z0-9_]', '_', name | lower),
        'relation': input.relation,
        'ids': ids,
        'id_types': id_types,
        'timestamp': ts,
        'ts': ('src.' ~ ts if modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', ts) else ts) if ts else none,
    }) }}
{% endmacro %}


{#- Validate the vars and lay them out: per input its input-var layers, ranks and GROUP BY passes; the
    entity vars with their pass and default; derived-var layers; the as_of expression. -#}
{% macro _feature_plan(inputs, vars, features, as_of) %}
    {%- set model = this.name if this is defined and this is not none else 'unknown' -%}
    {%- set prefix = "dbt_studio.entity_features in model '" ~ model ~ "'" -%}
    {%- set as_of_sql = dbt_studio._as_of_sql(as_of) -%}
    {%- if inputs is not mapping or inputs | length == 0 -%}
        {{ exceptions.raise_compiler_error(prefix ~ ": `inputs` must be a non-empty dict {name: {relation, ids, timestamp}}") }}
    {%- endif -%}
    {%- if vars is string or vars is mapping or vars is not iterable -%}
        {{ exceptions.raise_compiler_error(prefix ~ ": `vars` must be a list of {name, select, ...}") }}
    {%- endif -%}
    {%- set specs = {} -%}
    {%- set ordered = [] -%}
    {%- for name, input in inputs.items() -%}
        {%- set spec = dbt_studio._input_spec(name, input) -%}
        {%- if spec.ts -%}
            {%- do spec.update({'as_of_filter': spec.ts ~ ' <= ' ~ as_of_sql}) -%}
        {%- endif -%}
        {%- do spec.update({'layers': [], 'ranks': [], 'passes': [], 'tokens': dbt_studio._sql_identifiers(spec.timestamp or '') | map(attribute='name') | map('lower') | list, 'source': spec.cte ~ '__rows', 'col_ts': spec.timestamp if spec.timestamp and modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', spec.timestamp) else none}) -%}
        {%- do specs.update({name: spec}) -%}
        {%- do ordered.append(spec) -%}
    {%- endfor -%}

    {%- set all_names = [] -%}
    {%- for v in vars -%}
        {%- if v is not mapping or not v.get('name') or not v.get('select') -%}
            {{ exceptions.raise_compiler_error(prefix ~ ", var " ~ loop.index ~ ": each var needs `name` and `select`") }}
        {%- endif -%}
        {%- if v.name | lower in all_names -%}
            {{ exceptions.raise_compiler_error(prefix ~ ", var '" ~ v.name ~ "': duplicate name (each var needs its own)") }}
        {%- endif -%}
        {%- if v.name | lower in ['main_id', 'valid_at'] -%}
            {{ exceptions.raise_compiler_error(prefix ~ ", var '" ~ v.name ~ "': the name is reserved for the output's own column") }}
        {%- endif -%}
        {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', v.name) -%}
            {{ exceptions.raise_compiler_error(prefix ~ ", var '" ~ v.name ~ "': a var name must be a plain name (letters, digits, _)") }}
        {%- endif -%}
        {%- do all_names.append(v.name | lower) -%}
    {%- endfor -%}

    {%- set seen = {} -%}
    {%- set entity_vars = [] -%}
    {%- set derived = [] -%}
    {%- set pass_names = [] -%}
    {%- for v in vars -%}
        {%- set at = prefix ~ ", var '" ~ v.name ~ "'" -%}
        {%- set kind = v.get('kind') or ('entity' if v.get('from') else 'derived') -%}
        {%- if kind not in ['entity', 'input', 'derived'] -%}
            {{ exceptions.raise_compiler_error(at ~ ": unknown kind '" ~ kind ~ "' (entity, input or derived)") }}
        {%- endif -%}
        {%- if kind == 'derived' and v.get('from') -%}
            {{ exceptions.raise_compiler_error(at ~ ": a derived var has no `from` (it is computed from earlier vars)") }}
        {%- endif -%}
        {%- if kind != 'derived' -%}
            {%- if not v.get('from') -%}
                {{ exceptions.raise_compiler_error(at ~ ": an " ~ kind ~ " var needs `from` (one of the inputs: " ~ inputs.keys() | list | join(', ') ~ ")") }}
            {%- endif -%}
            {%- if v['from'] not in specs -%}
                {{ exceptions.raise_compiler_error(at ~ ": `from` names unknown input '" ~ v['from'] ~ "' (inputs: " ~ inputs.keys() | list | join(', ') ~ ")") }}
            {%- endif -%}
        {%- endif -%}
        {%- set input = specs[v['from']] if kind != 'derived' else none -%}
        {%- set order_by = v.get('order_by') or [] -%}
        {%- set order_by = [order_by] if order_by is string else order_by | list -%}
        {%- set partition_by = v.get('partition_by') or [] -%}
        {%- set partition_by = [partition_by] if partition_by is string else partition_by | list -%}
        {%- set select = dbt_studio._with_as_of(v.select | trim, as_of_sql) -%}
        {%- set v_where = dbt_studio._with_as_of(v.get('where') or '', as_of_sql) | trim -%}
        {%- set texts = [select, v_where] + order_by + partition_by -%}
        {%- if input is not none -%}
            {%- do input.tokens.extend(dbt_studio._sql_identifiers(texts | join(' ')) | map(attribute='name') | map('lower') | list) -%}
        {%- endif -%}

        {#- references: later vars, vars of the wrong kind or input, and (derived) unknown names -#}
        {%- for token in dbt_studio._sql_identifiers(texts | join(' ')) -%}
            {%- set t = token.name | lower -%}
            {%- if t == v.name | lower -%}
                {%- if kind == 'derived' -%}
                    {{ exceptions.raise_compiler_error(at ~ ": refers to itself") }}
                {%- endif -%}
            {%- elif t in all_names and t not in seen -%}
                {{ exceptions.raise_compiler_error(at ~ ": refers to var '" ~ token.name ~ "', which is defined later (a var can only use vars listed before it)") }}
            {%- elif t in seen -%}
                {%- set other = seen[t] -%}
                {%- if kind == 'derived' and other.kind == 'input' -%}
                    {{ exceptions.raise_compiler_error(at ~ ": refers to input var '" ~ token.name ~ "', a column of input '" ~ other['from'] ~ "'; aggregate it in an entity var first") }}
                {%- elif kind != 'derived' and other.kind != 'input' -%}
                    {{ exceptions.raise_compiler_error(at ~ ": refers to " ~ other.kind ~ " var '" ~ token.name ~ "', which only derived vars can use") }}
                {%- elif kind != 'derived' and other['from'] != v['from'] -%}
                    {{ exceptions.raise_compiler_error(at ~ ": refers to input var '" ~ token.name ~ "' of input '" ~ other['from'] ~ "', not of '" ~ v['from'] ~ "'") }}
                {%- endif -%}
            {%- elif kind == 'derived' and not token.call and t not in dbt_studio._sql_words() -%}
                {{ exceptions.raise_compiler_error(at ~ ": refers to unknown var '" ~ token.name ~ "' (a derived var can use the vars listed before it)") }}
            {%- endif -%}
        {%- endfor -%}

        {%- if v.get('window_days') is not none -%}
            {%- if kind != 'entity' -%}
                {{ exceptions.raise_compiler_error(at ~ ": `window_days` only applies to entity vars") }}
            {%- endif -%}
            {%- if not input.ts -%}
                {{ exceptions.raise_compiler_error(at ~ ": `window_days` needs a timestamp, and input '" ~ v['from'] ~ "' has none (add `timestamp` to the input)") }}
            {%- endif -%}
            {%- if v.window_days is not number or v.window_days <= 0 -%}
                {{ exceptions.raise_compiler_error(at ~ ": `window_days` must be a positive number of days") }}
            {%- endif -%}
        {%- endif -%}

        {%- do seen.update({v.name | lower: {'kind': kind, 'from': v.get('from')}}) -%}

        {%- if kind == 'input' -%}
            {%- if v.get('where') -%}
                {{ exceptions.raise_compiler_error(at ~ ": an input var has no `where` (use a case expression)") }}
            {%- endif -%}
            {%- set window = [] -%}
            {%- if partition_by -%}{%- do window.append('partition by ' ~ partition_by | join(', ')) -%}{%- endif -%}
            {%- if order_by -%}{%- do window.append('order by ' ~ order_by | join(', ')) -%}{%- endif -%}
            {%- set sql = select ~ (' over (' ~ window | join(' ') ~ ')' if window else '') -%}
            {#- its layer: one after the latest layer holding an input var it uses -#}
            {%- set depth = namespace(n=0) -%}
            {%- for token in dbt_studio._sql_identifiers(texts | join(' ')) -%}
                {%- for layer in input.layers -%}
                    {%- if token.name | lower in layer | map(attribute='name') | map('lower') | list and loop.index > depth.n -%}
                        {%- set depth.n = loop.index -%}
                    {%- endif -%}
                {%- endfor -%}
            {%- endfor -%}
            {%- if input.layers | length <= depth.n -%}{%- do input.layers.append([]) -%}{%- endif -%}
            {%- do input.layers[depth.n].append({'name': v.name, 'sql': sql}) -%}

        {%- elif kind == 'derived' -%}
            {%- set depth = namespace(n=0) -%}
            {%- for token in dbt_studio._sql_identifiers(texts | join(' ')) -%}
                {%- for layer in derived -%}
                    {%- if token.name | lower in layer | map(attribute='name') | map('lower') | list and loop.index > depth.n -%}
                        {%- set depth.n = loop.index -%}
                    {%- endif -%}
                {%- endfor -%}
            {%- endfor -%}
            {%- if derived | length <= depth.n -%}{%- do derived.append([]) -%}{%- endif -%}
            {%- do derived[depth.n].append({'name': v.name, 'sql': select}) -%}

        {%- else -%}
            {%- set conds = [] -%}
            {%- if v_where -%}{%- do conds.append('(' ~ v_where ~ ')') -%}{%- endif -%}
            {%- if v.get('window_days') is not none -%}
                {%- do conds.append(dbt_studio._window_condition(input, v.window_days, as_of_sql)) -%}
            {%- endif -%}
            {%- set cond = conds | join(' and ') -%}
            {%- set m = modules.re.match('(?is)^\s*(first_value|last_value)\s*\((.*)\)\s*$', select) -%}
            {%- if m -%}
                {%- if not order_by -%}
                    {{ exceptions.raise_compiler_error(at ~ ": " ~ m.group(1) | lower ~ "(...) needs `order_by`") }}
                {%- endif -%}
                {%- set value = m.group(2) | trim -%}
                {%- set keys = [] -%}
                {%- for item in order_by -%}
                    {%- do keys.append(dbt_studio._order_key(item, m.group(1) | lower == 'last_value')) -%}
                {%- endfor -%}
                {%- if keys[-1].expr != value -%}
                    {%- do keys.append({'expr': value, 'desc': keys[-1].desc}) -%}
                {%- endif -%}
                {%- set picked = dbt_studio._first_value(v.name, value, keys, cond) -%}
                {%- if picked.rank -%}
                    {%- do input.ranks.append({'name': v.name, 'cond': cond, 'order': picked.rank}) -%}
                {%- endif -%}
                {%- set agg = picked.agg -%}
                {%- set pass_key = '' -%}
            {%- else -%}
                {%- set pushed = dbt_studio._push_condition(select, cond) if cond else select -%}
                {%- set agg = pushed if pushed is not none else select -%}
                {%- set pass_key = '' if pushed is not none else cond -%}
            {%- endif -%}
            {%- set found = input.passes | selectattr('key', 'equalto', pass_key) | list -%}
            {%- if found -%}
                {%- set pass = found[0] -%}
            {%- else -%}
                {%- set pass = {'key': pass_key, 'cte': input.cte ~ '__pass_' ~ (input.passes | length + 1), 'vars': [], 'where': pass_key, 'windows': []} -%}
                {%- do input.passes.append(pass) -%}
                {%- do pass_names.append(pass.cte) -%}
            {%- endif -%}
            {%- do pass.vars.append({'name': v.name, 'sql': agg}) -%}
            {%- do pass.windows.append(v.get('window_days')) -%}
            {%- set is_count = modules.re.match('^\s*(count|count_if|approx_count_distinct)\s*\(', v.select, modules.re.I) and dbt_studio._single_call(v.select) -%}
            {%- set default = v.get('default', 0 if is_count else none) -%}
            {%- do entity_vars.append({'name': v.name, 'pass': pass.cte, 'default': default}) -%}
        {%- endif -%}
    {%- endfor -%}

    {#- a pass whose vars all have a window scans only the widest window -#}
    {%- for input in ordered -%}
        {%- for pass in input.passes if pass.key == '' and none not in pass.windows -%}
            {%- do pass.update({'where': dbt_studio._window_condition(input, pass.windows | max, as_of_sql)}) -%}
        {%- endfor -%}
    {%- endfor -%}

    {%- if features is string or features is not iterable or features | length == 0 -%}
        {{ exceptions.raise_compiler_error(prefix ~ ": `features` must be a non-empty list of var names") }}
    {%- endif -%}
    {%- for name in features -%}
        {%- if name | lower not in seen -%}
            {{ exceptions.raise_compiler_error(prefix ~ ", feature '" ~ name ~ "': names unknown var '" ~ name ~ "' (features list names of vars)") }}
        {%- elif seen[name | lower].kind == 'input' -%}
            {{ exceptions.raise_compiler_error(prefix ~ ", feature '" ~ name ~ "': input var '" ~ name ~ "' is a row-level column; aggregate it in an entity var") }}
        {%- endif -%}
        {%- if (features | map('lower') | select('equalto', name | lower) | list | length) > 1 -%}
            {{ exceptions.raise_compiler_error(prefix ~ ", feature '" ~ name ~ "': listed twice in `features`") }}
        {%- endif -%}
    {%- endfor -%}

    {{ return({
        'inputs': ordered | selectattr('passes') | list,
        'entity_vars': entity_vars,
        'passes': pass_names,
        'derived_layers': derived,
        'as_of': as_of_sql,
    }) }}
{% endmacro %}


{#- The as_of timestamp as SQL: a literal date/time string is cast, any other string is SQL, none is now. -#}
{% macro _as_of_sql(as_of) %}
    {%- set ts = dbt.type_timestamp() -%}
    {%- if as_of is none or as_of == '' -%}
        {{ return('cast(' ~ dbt.current_timestamp() | trim ~ ' as ' ~ ts ~ ')') }}
    {%- elif modules.re.match('^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$', as_of | string) -%}
        {{ return('cast(' ~ dbt.string_literal(as_of | string) ~ ' as ' ~ ts ~ ')') }}
    {%- else -%}
        {{ return('cast(' ~ as_of ~ ' as ' ~ ts ~ ')') }}
    {%- endif -%}
{% endmacro %}

{% macro _with_as_of(sql, as_of_sql) %}
    {{ return(modules.re.sub('\{\{\s*as_of\s*\}\}', as_of_sql | replace('\\', '\\\\'), sql | string)) }}
{% endmacro %}

{#- Rows inside the last `days` days up to as_of (the upper bound is the input's own as_of filter). -#}
{% macro _window_condition(input, days, as_of_sql) %}
    {%- set column = input.col_ts if input.col_ts else input.timestamp -%}
    {{ return(column ~ ' >= ' ~ dbt.dateadd('day', -days, as_of_sql) | trim) }}
{% endmacro %}

{#- An order_by item ('col', 'col desc', 'col asc nulls first') as {expr, desc}, flipped for last_value. NULL
    keys always sort last. -#}
{% macro _order_key(item, flip) %}
    {%- set m = modules.re.match('(?is)^\s*(.*?)(\s+(asc|desc))?(\s+nulls\s+(first|last))?\s*$', item) -%}
    {%- set desc = (m.group(3) or 'asc') | lower == 'desc' -%}
    {{ return({'expr': m.group(1), 'desc': (not desc) if flip else desc}) }}
{% endmacro %}

{#- The value of the first row in `keys` order among rows meeting `cond` (ties: the last key is the value itself):
    {agg: aggregate SQL, rank: ORDER BY of a row_number() column `<name>__rn` it reads, or none}. -#}
{% macro _first_value(name, value, keys, cond) %}
    {{ return(adapter.dispatch('_first_value', 'dbt_studio')(name, value, keys, cond)) }}
{% endmacro %}

{% macro default___first_value(name, value, keys, cond) %}
    {%- set order = [] -%}
    {%- for k in keys -%}
        {%- do order.append(k.expr ~ (' desc' if k.desc else ' asc') ~ ' nulls last') -%}
    {%- endfor -%}
    {{ return({
        'agg': 'max(case when ' ~ (cond ~ ' and ' if cond else '') ~ name ~ '__rn = 1 then ' ~ value ~ ' end)',
        'rank': order | join(', '),
    }) }}
{% endmacro %}

{#- DuckDB: no sort, when every key runs the same way: arg_min_null / arg_max_null over a struct of the keys
    (rows whose struct is null, i.e. not meeting cond, are skipped; a null field sorts last ascending, so
    descending keys carry `is not null` first). -#}
{% macro duckdb___first_value(name, value, keys, cond) %}
    {%- set directions = keys | map(attribute='desc') | unique | list -%}
    {%- if directions | length > 1 -%}
        {{ return(dbt_studio.default___first_value(name, value, keys, cond)) }}
    {%- endif -%}
    {%- set desc = directions[0] -%}
    {%- set parts = [] -%}
    {%- for k in keys -%}
        {%- if desc -%}{%- do parts.append('(' ~ k.expr ~ ') is not null') -%}{%- endif -%}
        {%- do parts.append(k.expr) -%}
    {%- endfor -%}
    {%- set key = '(' ~ parts | join(', ') ~ ')' -%}
    {{ return({
        'agg': ('arg_max_null(' if desc else 'arg_min_null(') ~ value ~ ', ' ~ ('case when ' ~ cond ~ ' then ' ~ key ~ ' end' if cond else key) ~ ')',
        'rank': none,
    }) }}
{% endmacro %}

{#- Identifiers of a SQL text outside string literals: [{name, call}] (call: followed by '(' or after '.'). -#}
{% macro _sql_identifiers(sql) %}
    {%- set text = modules.re.sub("'([^']|'')*'", "''", sql | string) -%}
    {%- set text = modules.re.sub('"[^"]*"', '""', text) -%}
    {%- set out = [] -%}
    {%- for m in modules.re.finditer('(\.\s*)?\\b([A-Za-z_][A-Za-z0-9_$]*)\\b(\s*\()?', text) -%}
        {%- if not modules.re.match('^[0-9]', m.group(2)) -%}
            {%- do out.append({'name': m.group(2), 'call': m.group(3) is not none or m.group(1) is not none}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}

{#- SQL words a derived var may use besides var names and function calls. -#}
{% macro _sql_words() %}
    {{ return(['and', 'or', 'not', 'null', 'is', 'in', 'as', 'case', 'when', 'then', 'else', 'end', 'true', 'false',
               'between', 'like', 'ilike', 'distinct', 'interval', 'date', 'time', 'timestamp', 'timestamp_ntz',
               'timestamp_tz', 'timestamp_ltz', 'varchar', 'string', 'text', 'char', 'int', 'integer', 'bigint',
               'smallint', 'double', 'float', 'real', 'boolean', 'numeric', 'decimal', 'number', 'precision',
               'year', 'quarter', 'month', 'week', 'day', 'days', 'hour', 'minute', 'second', 'millisecond',
               'microsecond', 'nanosecond', 'epoch', 'current_date', 'current_timestamp', 'nulls', 'first',
               'last', 'asc', 'desc', 'over', 'partition', 'by', 'order', 'escape', 'similar', 'to', 'at',
               'zone', 'from', 'dow']) }}
{% endmacro %}

{#- True when `sql` is one function call spanning the whole text (e.g. `count(distinct x)`). -#}
{% macro _single_call(sql) %}
    {%- set text = sql | trim -%}
    {%- set open = text.find('(') -%}
    {{ return(open > 0 and dbt_studio._close_paren(text, open) == text | length - 1) }}
{% endmacro %}

{#- Index of the parenthesis closing the one at `open` (quotes skipped), or -1. -#}
{% macro _close_paren(text, open) %}
    {%- set state = namespace(depth=0, quote=false, at=-1) -%}
    {%- for i in range(open, text | length) -%}
        {%- set c = text[i] -%}
        {%- if c == "'" -%}
            {%- set state.quote = not state.quote -%}
        {%- elif not state.quote and c == '(' -%}
            {%- set state.depth = state.depth + 1 -%}
        {%- elif not state.quote and c == ')' -%}
            {%- set state.depth = state.depth - 1 -%}
            {%- if state.depth == 0 -%}
                {%- set state.at = i -%}
                {%- break -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(state.at) }}
{% endmacro %}

{#- `select` with `cond` pushed into each of its aggregates (count(*) -> count(case when cond then 1 end), ...),
    so vars with different where / windows share one GROUP BY; none when an aggregate cannot take it. -#}
{% macro _push_condition(select, cond) %}
    {%- set aggregates = 'count|count_if|sum|avg|min|max|median|stddev|stddev_samp|stddev_pop|variance|var_samp|var_pop|any_value|bool_and|bool_or|booland_agg|boolor_agg|approx_count_distinct|mode' -%}
    {%- set state = namespace(cursor=0, out='', ok=true, found=false) -%}
    {%- for m in modules.re.finditer('\\b(' ~ aggregates ~ ')\s*\(', select, modules.re.I) -%}
        {%- if m.start() >= state.cursor and state.ok -%}
            {%- set close = dbt_studio._close_paren(select, m.end() - 1) -%}
            {%- if close < 0 -%}
                {%- set state.ok = false -%}
            {%- else -%}
                {%- set name = m.group(1) | lower -%}
                {%- set arg = select[m.end():close] | trim -%}
                {%- set dm = modules.re.match('(?is)^distinct\s+(.*)$', arg) -%}
                {%- set body = dm.group(1) if dm else arg -%}
                {%- set top_level_comma = modules.re.sub("\([^()]*\)|'[^']*'", '', body).find(',') >= 0 -%}
                {%- if top_level_comma or modules.re.match('^\s*over\\b', select[close + 1:], modules.re.I) -%}
                    {%- set state.ok = false -%}
                {%- elif body == '*' -%}
                    {%- set new = name ~ '(case when ' ~ cond ~ ' then 1 end)' -%}
                {%- elif name == 'count_if' -%}
                    {%- set new = 'count_if(' ~ cond ~ ' and (' ~ body ~ '))' -%}
                {%- else -%}
                    {%- set new = name ~ '(' ~ ('distinct ' if dm else '') ~ 'case when ' ~ cond ~ ' then ' ~ body ~ ' end)' -%}
                {%- endif -%}
                {%- if state.ok -%}
                    {%- set state.out = state.out ~ select[state.cursor:m.start()] ~ new -%}
                    {%- set state.cursor = close + 1 -%}
                    {%- set state.found = true -%}
                {%- endif -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not state.ok or not state.found -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(state.out ~ select[state.cursor:]) }}
{% endmacro %}
