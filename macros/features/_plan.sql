{#- The planner of entity_features: validate the inputs and vars, and lay them out as the template reads them. -#}

{#- The plan: per input its input-var layers, ranks, GROUP BY passes and no-rows values; the entity and
    identifier vars with the SQL of their value; the identifiers to pick from the id graph; derived-var layers;
    the as_of expression. -#}
{% macro _feature_plan(inputs, vars, features, as_of) %}
    {%- set model = this.name if this is defined and this is not none else 'unknown' -%}
    {%- set prefix = "dbt_studio.entity_features in model '" ~ model ~ "'" -%}
    {%- set as_of_sql = dbt_studio._as_of_sql(as_of) -%}
    {%- set specs = dbt_studio._feature_inputs(prefix, inputs, as_of_sql) -%}
    {%- set all_names = dbt_studio._feature_var_names(prefix, vars) -%}
    {%- set plan = {'seen': {}, 'entity_vars': [], 'derived_layers': [], 'passes': [], 'identifiers': [],
                    'identifier_names': [], 'counted': []} -%}
    {%- for v in vars if dbt_studio._var_kind(v) == 'identifier' -%}
        {%- do plan.identifier_names.append(v.name | lower) -%}
    {%- endfor -%}
    {%- for v in vars -%}
        {%- do dbt_studio._plan_var(prefix ~ ", var '" ~ v.name ~ "'", v, specs, all_names, plan, as_of_sql) -%}
    {%- endfor -%}

    {#- a pass whose vars all have a window scans only the widest window -#}
    {%- for input in specs.values() -%}
        {%- for pass in input.passes if pass.key == '' and none not in pass.windows -%}
            {%- do pass.update({'where': dbt_studio._window_condition(input, pass.windows | max, as_of_sql)}) -%}
        {%- endfor -%}
    {%- endfor -%}

    {%- do dbt_studio._check_features(prefix, features, plan.seen) -%}
    {#- the inputs with a pass, and the inputs a used grouped input reads (listed before it) -#}
    {%- set needed = [] -%}
    {%- for input in specs.values() | reverse -%}
        {%- if input.passes or input.name in needed -%}
            {%- do needed.append(input.name) -%}
            {%- if input.grouped -%}{%- do needed.append(input.grouped.source) -%}{%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set used = specs.values() | selectattr('name', 'in', needed) | list -%}
    {%- set joins = [] -%}
    {%- for pass in plan.passes -%}
        {%- do joins.append('left join ' ~ pass ~ ' on ' ~ pass ~ '.main_id = entities.main_id') -%}
    {%- endfor -%}
    {%- if plan.identifiers -%}
        {%- do joins.append('left join identifiers on identifiers.main_id = entities.main_id') -%}
    {%- endif -%}
    {%- for input in used if input.no_rows -%}
        {%- do joins.append('cross join ' ~ input.cte ~ '__no_rows') -%}
    {%- endfor -%}
    {{ return({
        'inputs': used,
        'entity_vars': plan.entity_vars,
        'joins': joins,
        'identifiers': plan.identifiers,
        'counted': plan.counted,
        'derived_layers': plan.derived_layers,
        'as_of': as_of_sql,
    }) }}
{% endmacro %}


{#- The inputs as specs ({name: spec}, in order), each with its as_of filter and empty layout lists; an input with
    `from` is a grouped input (features/_grouped.sql). -#}
{% macro _feature_inputs(prefix, inputs, as_of_sql) %}
    {%- if inputs is not mapping or inputs | length == 0 -%}
        {{ exceptions.raise_compiler_error(prefix ~ ": `inputs` must be a non-empty dict "
                                           ~ "{name: {relation, ids, timestamp}}") }}
    {%- endif -%}
    {%- set specs = {} -%}
    {%- for name, input in inputs.items() -%}
        {%- if input is mapping and 'from' in input -%}
            {%- set spec = dbt_studio._grouped_input_spec(prefix, name, input, specs) -%}
        {%- else -%}
            {%- set spec = dbt_studio._input_spec(name, input) -%}
        {%- endif -%}
        {%- if spec.ts -%}
            {%- do spec.update({'as_of_filter': spec.ts ~ ' <= ' ~ as_of_sql}) -%}
        {%- endif -%}
        {%- set plain_ts = spec.timestamp and modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', spec.timestamp) -%}
        {%- do spec.update({
            'layers': [],
            'ranks': [],
            'passes': [],
            'no_rows': [],
            'tokens': dbt_studio._sql_identifiers(spec.timestamp or '') | map(attribute='name') | map('lower') | list,
            'source': spec.cte ~ '__rows',
            'col_ts': spec.timestamp if plain_ts else none,
        }) -%}
        {%- do specs.update({name: spec}) -%}
    {%- endfor -%}
    {{ return(specs) }}
{% endmacro %}


{#- The var names, lower-cased, after checking each var has a plain, unique, unreserved name. -#}
{% macro _feature_var_names(prefix, vars) %}
    {%- if vars is string or vars is mapping or vars is not iterable -%}
        {{ exceptions.raise_compiler_error(prefix ~ ": `vars` must be a list of {name, select, ...}") }}
    {%- endif -%}
    {%- set names = [] -%}
    {%- for v in vars -%}
        {%- if v is not mapping or not v.get('name') -%}
            {{ exceptions.raise_compiler_error(prefix ~ ", var " ~ loop.index ~ ": each var needs a `name`") }}
        {%- endif -%}
        {%- set at = prefix ~ ", var '" ~ v.name ~ "'" -%}
        {%- if v.name | lower in names -%}
            {{ exceptions.raise_compiler_error(at ~ ": duplicate name (each var needs its own)") }}
        {%- endif -%}
        {%- if v.name | lower in ['main_id', 'valid_at'] -%}
            {{ exceptions.raise_compiler_error(at ~ ": the name is reserved for the output's own column") }}
        {%- endif -%}
        {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', v.name) -%}
            {{ exceptions.raise_compiler_error(at ~ ": a var name must be a plain name (letters, digits, _)") }}
        {%- endif -%}
        {%- do names.append(v.name | lower) -%}
    {%- endfor -%}
    {{ return(names) }}
{% endmacro %}


{#- The kind of a var: its `kind`, else identifier (with `id_type`), entity (with `from`) or derived. -#}
{% macro _var_kind(v) %}
    {%- if v is not mapping -%}{{ return(none) }}{%- endif -%}
    {{ return(v.get('kind') or ('identifier' if v.get('id_type') else 'entity' if v.get('from') else 'derived')) }}
{% endmacro %}

{#- The keys each kind of var takes. -#}
{% macro _var_keys() %}
    {{ return({
        'entity': ['name', 'kind', 'from', 'select', 'where', 'window_days', 'order_by', 'default'],
        'input': ['name', 'kind', 'from', 'select', 'partition_by', 'order_by'],
        'derived': ['name', 'kind', 'select'],
        'identifier': ['name', 'kind', 'id_type', 'pick', 'default'],
    }) }}
{% endmacro %}

{#- One var into the plan (`at` names it in errors): checks its kind, keys, input and references, then lays it
    out. -#}
{% macro _plan_var(at, v, specs, all_names, plan, as_of_sql) %}
    {%- set kind = dbt_studio._var_kind(v) -%}
    {%- set keys = dbt_studio._var_keys() -%}
    {%- if kind not in keys -%}
        {{ exceptions.raise_compiler_error(at ~ ": unknown kind '" ~ kind
                                           ~ "' (entity, input, derived or identifier)") }}
    {%- endif -%}
    {%- set elsewhere = {} -%}
    {%- for other, other_keys in keys.items() if other != kind -%}
        {%- for key in other_keys if key not in keys[kind] -%}
            {%- do elsewhere.update({key: (elsewhere[key] ~ ' and ' if key in elsewhere else '') ~ other ~ ' vars'}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if kind == 'derived' and v.get('from') -%}
        {{ exceptions.raise_compiler_error(at ~ ": a derived var has no `from` (it is computed from earlier vars)") }}
    {%- endif -%}
    {%- do dbt_studio._check_keys(at, v, keys[kind], elsewhere, 'an ' ~ kind ~ ' var') -%}
    {%- if kind == 'identifier' -%}
        {%- do dbt_studio._plan_identifier_var(at, v, specs, plan) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not v.get('select') -%}
        {{ exceptions.raise_compiler_error(at ~ ": an " ~ kind ~ " var needs a `select`") }}
    {%- endif -%}
    {%- if kind != 'derived' -%}
        {%- set known = specs.keys() | list | join(', ') -%}
        {%- if not v.get('from') -%}
            {{ exceptions.raise_compiler_error(at ~ ": an " ~ kind ~ " var needs `from` (one of the inputs: "
                                               ~ known ~ ")") }}
        {%- endif -%}
        {%- if v['from'] not in specs -%}
            {{ exceptions.raise_compiler_error(at ~ ": `from` names unknown input '" ~ v['from'] ~ "' (inputs: "
                                               ~ known ~ ")") }}
        {%- endif -%}
    {%- endif -%}
    {%- set input = specs[v['from']] if kind != 'derived' else none -%}
    {%- set order_by = v.get('order_by') or [] -%}
    {%- set order_by = [order_by] if order_by is string else order_by | list -%}
    {%- set partition_by = v.get('partition_by') or [] -%}
    {%- set partition_by = [partition_by] if partition_by is string else partition_by | list -%}
    {%- set select = dbt_studio._with_as_of(v.select | trim, as_of_sql) -%}
    {%- set where = dbt_studio._with_as_of(v.get('where') or '', as_of_sql) | trim -%}
    {%- set tokens = dbt_studio._sql_identifiers(([select, where] + order_by + partition_by) | join(' ')) -%}
    {%- if input is not none -%}
        {%- do input.tokens.extend(tokens | map(attribute='name') | map('lower') | list) -%}
    {%- endif -%}
    {%- do dbt_studio._check_references(at, v, kind, tokens, all_names, plan) -%}

    {%- if v.get('window_days') is not none -%}
        {%- if not input.ts -%}
            {{ exceptions.raise_compiler_error(at ~ ": `window_days` needs a timestamp, and input '" ~ v['from']
                                               ~ "' has none (add `timestamp` to the input)") }}
        {%- endif -%}
        {%- if v.window_days is not number or v.window_days <= 0 -%}
            {{ exceptions.raise_compiler_error(at ~ ": `window_days` must be a positive number of days") }}
        {%- endif -%}
    {%- endif -%}
    {%- do plan.seen.update({v.name | lower: {'kind': kind, 'from': v.get('from')}}) -%}

    {%- if kind == 'input' -%}
        {%- set window = [] -%}
        {%- if partition_by -%}{%- do window.append('partition by ' ~ partition_by | join(', ')) -%}{%- endif -%}
        {%- if order_by -%}{%- do window.append('order by ' ~ order_by | join(', ')) -%}{%- endif -%}
        {%- set sql = select ~ (' over (' ~ window | join(' ') ~ ')' if window else '') -%}
        {%- do dbt_studio._add_to_layer(input.layers, tokens, {'name': v.name, 'sql': sql}) -%}
    {%- elif kind == 'derived' -%}
        {%- do dbt_studio._add_to_layer(plan.derived_layers, tokens, {'name': v.name, 'sql': select}) -%}
    {%- else -%}
        {%- do dbt_studio._plan_entity_var(at, v, input, select, where, order_by, plan, as_of_sql) -%}
    {%- endif -%}
{% endmacro %}


{#- References of a var's SQL (`tokens`): no later vars, no vars of the wrong kind or input, and (derived vars)
    no unknown names. `plan.seen` holds the vars listed before it: {lower name: {kind, from}}. An identifier var
    is a column of the output only, so in an entity or input var its name is the input's own column. -#}
{% macro _check_references(at, v, kind, tokens, all_names, plan) %}
    {%- set seen = plan.seen -%}
    {%- for token in tokens -%}
        {%- set t = token.name | lower -%}
        {%- if kind != 'derived' and t in plan.identifier_names -%}
            {#- a column of the input -#}
        {%- elif t == v.name | lower -%}
            {%- if kind == 'derived' -%}
                {{ exceptions.raise_compiler_error(at ~ ": refers to itself") }}
            {%- endif -%}
        {%- elif t in all_names and t not in seen -%}
            {{ exceptions.raise_compiler_error(at ~ ": refers to var '" ~ token.name ~ "', which is defined later "
                                               ~ "(a var can only use vars listed before it)") }}
        {%- elif t in seen -%}
            {%- set other = seen[t] -%}
            {%- if kind == 'derived' and other.kind == 'input' -%}
                {{ exceptions.raise_compiler_error(at ~ ": refers to input var '" ~ token.name
                                                   ~ "', a column of input '" ~ other['from']
                                                   ~ "'; aggregate it in an entity var first") }}
            {%- elif kind != 'derived' and other.kind != 'input' -%}
                {{ exceptions.raise_compiler_error(at ~ ": refers to " ~ other.kind ~ " var '" ~ token.name
                                                   ~ "', which only derived vars can use") }}
            {%- elif kind != 'derived' and other['from'] != v['from'] -%}
                {{ exceptions.raise_compiler_error(at ~ ": refers to input var '" ~ token.name ~ "' of input '"
                                                   ~ other['from'] ~ "', not of '" ~ v['from'] ~ "'") }}
            {%- endif -%}
        {%- elif kind == 'derived' and not token.call and t not in dbt_studio._sql_words() -%}
            {{ exceptions.raise_compiler_error(at ~ ": refers to unknown var '" ~ token.name
                                               ~ "' (a derived var can use the vars listed before it)") }}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}


{#- Append `item` to the first layer after the last one holding a var its SQL uses (`tokens`), so a var is
    computed one window / select pass after everything it reads. -#}
{% macro _add_to_layer(layers, tokens, item) %}
    {%- set depth = namespace(n=0) -%}
    {%- for token in tokens -%}
        {%- for layer in layers -%}
            {%- set names = layer | map(attribute='name') | map('lower') | list -%}
            {%- if token.name | lower in names and loop.index > depth.n -%}
                {%- set depth.n = loop.index -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if layers | length <= depth.n -%}{%- do layers.append([]) -%}{%- endif -%}
    {%- do layers[depth.n].append(item) -%}
{% endmacro %}


{#- An entity var into a GROUP BY pass of its input: its where / window pushed into the aggregates when they
    take it (then all such vars share one pass), else a pass filtered by them; first / last values via
    dbt_studio._first_value. -#}
{% macro _plan_entity_var(at, v, input, select, where, order_by, plan, as_of_sql) %}
    {%- set conds = [] -%}
    {%- if where -%}{%- do conds.append('(' ~ where ~ ')') -%}{%- endif -%}
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
        {%- set cte = input.cte ~ '__pass_' ~ (input.passes | length + 1) -%}
        {%- set pass = {'key': pass_key, 'cte': cte, 'vars': [], 'where': pass_key, 'windows': []} -%}
        {%- do input.passes.append(pass) -%}
        {%- do plan.passes.append(pass.cte) -%}
    {%- endif -%}
    {%- do pass.vars.append({'name': v.name, 'sql': agg}) -%}
    {%- do pass.windows.append(v.get('window_days')) -%}
    {%- set value = dbt_studio._entity_var_value(v, select, cond, m is not none, input, pass, agg) -%}
    {%- do plan.entity_vars.append({'name': v.name, 'value': value}) -%}
{% endmacro %}


{#- The SQL of an entity var's value in `entity_vars`: what its pass computed for a person with at least one row
    meeting its where / window, and the default for everyone else — whether they have no rows at all or only rows
    the filters remove. The default is `default` when given (also for a NULL aggregate), else what `select` gives
    over no rows: 0 for a single count, NULL for a single sum / min / max / avg / first / last value, and for any
    other select (`coalesce(sum(x), 0)`, `count(*) - count(distinct s)`) its value over an empty set of rows,
    computed by the warehouse in `<input>__no_rows`. -#}
{% macro _entity_var_value(v, select, cond, first_value, input, pass, agg) %}
    {%- set value = pass.cte ~ '.' ~ v.name -%}
    {%- set call = modules.re.match('(?is)^\s*([a-z_][a-z0-9_]*)\s*\(', select) -%}
    {%- set function = call.group(1) | lower if call and dbt_studio._single_call(select) else none -%}
    {%- set counts = function in ['count', 'count_if', 'approx_count_distinct'] -%}
    {%- set null_on_no_rows = first_value or (function in dbt_studio._pushable_aggregates() and not counts) -%}
    {#- a person is in the pass when they have rows; with the condition pushed into the aggregates (pass key ''),
        only those with a matching row match -#}
    {%- set pushed = cond and pass.key == '' -%}
    {%- set explicit = v.get('default') is not none -%}
    {%- if explicit and (null_on_no_rows or not pushed) -%}
        {{ return('coalesce(' ~ value ~ ', ' ~ v.default ~ ')') }}
    {%- elif not explicit and counts -%}
        {{ return('coalesce(' ~ value ~ ', 0)') }}
    {%- elif not explicit and null_on_no_rows -%}
        {{ return(value) }}
    {%- endif -%}
    {%- set matched = dbt_studio._matched(pass, cond) if pushed else pass.cte ~ '.main_id is not null' -%}
    {%- if explicit -%}
        {{ return('coalesce(case when ' ~ matched ~ ' then ' ~ value ~ ' end, ' ~ v.default ~ ')') }}
    {%- endif -%}
    {%- do input.no_rows.append({'name': v.name, 'sql': agg}) -%}
    {{ return('case when ' ~ matched ~ ' then ' ~ value ~ ' else ' ~ input.cte ~ '__no_rows.' ~ v.name ~ ' end') }}
{% endmacro %}

{#- `<pass>.matching_rows_<n> > 0`: whether the person has a row meeting `cond`, counted once per condition in the
    pass. -#}
{% macro _matched(pass, cond) %}
    {%- if 'matching' not in pass -%}{%- do pass.update({'matching': {}}) -%}{%- endif -%}
    {%- if cond not in pass.matching -%}
        {%- set column = 'matching_rows_' ~ (pass.matching | length + 1) -%}
        {%- do pass.matching.update({cond: column}) -%}
        {%- do pass.vars.append({'name': column, 'sql': 'count(case when ' ~ cond ~ ' then 1 end)'}) -%}
    {%- endif -%}
    {{ return(pass.cte ~ '.' ~ pass.matching[cond] ~ ' > 0') }}
{% endmacro %}


{#- `features` names earlier entity / derived vars, each once. -#}
{% macro _check_features(prefix, features, seen) %}
    {%- if features is string or features is not iterable or features | length == 0 -%}
        {{ exceptions.raise_compiler_error(prefix ~ ": `features` must be a non-empty list of var names") }}
    {%- endif -%}
    {%- for name in features -%}
        {%- set at = prefix ~ ", feature '" ~ name ~ "'" -%}
        {%- if name | lower not in seen -%}
            {{ exceptions.raise_compiler_error(at ~ ": names unknown var '" ~ name
                                               ~ "' (features list names of vars)") }}
        {%- elif seen[name | lower].kind == 'input' -%}
            {{ exceptions.raise_compiler_error(at ~ ": input var '" ~ name
                                               ~ "' is a row-level column; aggregate it in an entity var") }}
        {%- endif -%}
        {%- if (features | map('lower') | select('equalto', name | lower) | list | length) > 1 -%}
            {{ exceptions.raise_compiler_error(at ~ ": listed twice in `features`") }}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}


{#- `{{ as_of }}` in a var's SQL replaced by the as_of timestamp. -#}
{% macro _with_as_of(sql, as_of_sql) %}
    {{ return(modules.re.sub('\{\{\s*as_of\s*\}\}', as_of_sql | replace('\\', '\\\\'), sql | string)) }}
{% endmacro %}

{#- Rows inside the last `days` days up to as_of (the upper bound is the input's own as_of filter). -#}
{% macro _window_condition(input, days, as_of_sql) %}
    {%- set column = input.col_ts if input.col_ts else input.timestamp -%}
    {{ return(column ~ ' >= ' ~ dbt.dateadd('day', -days, as_of_sql) | trim) }}
{% endmacro %}
