{#- A small SQL tokenizer for the feature planner: identifiers, parentheses and aggregates of a var's SQL text. -#}

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

{#- Aggregates that take a condition pushed into their argument (null arguments are skipped). -#}
{% macro _pushable_aggregates() %}
    {{ return(['count', 'count_if', 'sum', 'avg', 'min', 'max', 'median', 'stddev', 'stddev_samp', 'stddev_pop',
               'variance', 'var_samp', 'var_pop', 'any_value', 'bool_and', 'bool_or', 'booland_agg', 'boolor_agg',
               'approx_count_distinct', 'mode']) }}
{% endmacro %}

{#- Aggregates whose argument cannot simply take a condition (several arguments, ordered, or collections): a
    select using one is never rewritten, so its where / window filter a pass of its own. -#}
{% macro _other_aggregates() %}
    {{ return(['listagg', 'string_agg', 'group_concat', 'array_agg', 'list', 'arg_min', 'arg_max', 'min_by', 'max_by',
               'arg_min_null', 'arg_max_null', 'approx_quantile', 'quantile', 'quantile_cont', 'quantile_disc',
               'percentile_cont', 'percentile_disc', 'approx_percentile', 'first', 'last', 'histogram', 'corr',
               'covar_pop', 'covar_samp', 'object_agg', 'array_union_agg', 'hll', 'approx_top_k']) }}
{% endmacro %}

{#- `select` with `cond` pushed into each of its aggregates (count(*) -> count(case when cond then 1 end), ...),
    so vars with different where / windows share one GROUP BY; none when an aggregate cannot take it. -#}
{% macro _push_condition(select, cond) %}
    {%- set others = dbt_studio._other_aggregates() | join('|') -%}
    {%- if modules.re.search('\\b(' ~ others ~ ')\\s*\\(', select, modules.re.I) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set aggregates = dbt_studio._pushable_aggregates() | join('|') -%}
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
                    {%- set new = name ~ '(' ~ ('distinct ' if dm else '') ~ 'case when ' ~ cond ~ ' then ' ~ body
                                  ~ ' end)' -%}
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
