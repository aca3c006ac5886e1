{#-
    The audience compiler: a condition tree (docs/audiences.md) to SQL predicates over one scope.

    `ctx`   {schema, mode ('model' | 'preview'), name (the audience, for errors), as_of (SQL), ctes: [], n: [0]}
    `scope` {alias, model, joins: []}: the rows a predicate is about (the parent as `p`, or a related model's
            rows inside an EXISTS / aggregate); aggregate CTEs it needs are LEFT JOINed through `scope.joins`.
    `nullsafe` true under a `not`: every leaf becomes coalesce(..., false), so that a condition on NULL is false
            and `not` is its exact complement.
-#}

{% macro _next(ctx, prefix) %}
    {%- do ctx.n.append(1) -%}
    {{ return(prefix ~ (ctx.n | length)) }}
{% endmacro %}

{% macro _cond_error(ctx, msg) %}
    {{ exceptions.raise_compiler_error("dbt_studio: audience '" ~ ctx.name ~ "': " ~ msg) }}
{% endmacro %}

{#- A SQL literal of a YAML / Jinja value. -#}
{% macro _lit(value) %}
    {%- if value is none -%}{{ return('null') }}
    {%- elif value is sameas true -%}{{ return('true') }}
    {%- elif value is sameas false -%}{{ return('false') }}
    {%- elif value is number -%}{{ return(value | string) }}
    {%- else -%}{{ return(dbt_studio.string_literal(value)) }}
    {%- endif -%}
{% endmacro %}

{#- The relation of a model: ref() in a model (which dbt must have recorded at parse time), or the name from the
    manifest in a preview. -#}
{% macro _relation(ctx, name) %}
    {%- set node = ctx.schema.models.get(name) -%}
    {%- if node is none -%}
        {{ dbt_studio._cond_error(ctx, "unknown model '" ~ name ~ "'") }}
    {%- endif -%}
    {%- if ctx.mode == 'preview' -%}
        {{ return(node.relation) }}
    {%- endif -%}
    {%- if node.unique_id not in model.depends_on.nodes -%}
        {{ dbt_studio._cond_error(ctx, dbt_studio._unrecorded_model(name)) }}
    {%- endif -%}
    {{ return(ref(name)) }}
{% endmacro %}

{% macro _check_column(ctx, model, column) %}
    {%- set problem = dbt_studio._column_problem(ctx.schema, model, column) -%}
    {%- if problem is not none -%}
        {{ dbt_studio._cond_error(ctx, problem) }}
    {%- endif -%}
{% endmacro %}

{#- `expr <op> value` for the comparison operators shared by properties and aggregates. -#}
{% macro _compare(ctx, expr, op, value) %}
    {%- set op = (op or '=') | lower -%}
    {%- if op in ('=', '!=', '<>', '<', '<=', '>', '>=') -%}
        {%- if value is none -%}{{ return('(null is not null)') }}{%- endif -%}
        {{ return(expr ~ ' ' ~ ('<>' if op == '!=' else op) ~ ' ' ~ dbt_studio._lit(value)) }}
    {%- elif op in ('in', 'not in') -%}
        {%- if value is string or value is not iterable -%}
            {{ dbt_studio._cond_error(ctx, "'" ~ op ~ "' needs a list of values") }}
        {%- endif -%}
        {%- set values = [] -%}
        {%- for v in value if v is not none -%}{%- do values.append(dbt_studio._lit(v)) -%}{%- endfor -%}
        {%- if values | length == 0 -%}
            {{ return('(' ~ expr ~ ' is not null and false)' if op == 'in' else '(' ~ expr ~ ' is not null)') }}
        {%- endif -%}
        {{ return(expr ~ ' ' ~ op ~ ' (' ~ (values | join(', ')) ~ ')') }}
    {%- elif op == 'between' -%}
        {%- if value is string or value is not iterable or value | length != 2 -%}
            {{ dbt_studio._cond_error(ctx, "'between' needs [low, high]") }}
        {%- endif -%}
        {%- if value[0] is none or value[1] is none -%}{{ return('(null is not null)') }}{%- endif -%}
        {{ return(expr ~ ' between ' ~ dbt_studio._lit(value[0]) ~ ' and ' ~ dbt_studio._lit(value[1])) }}
    {%- elif op in ('contains', 'starts with', 'ends with') -%}
        {%- if value is none -%}{{ return('(null is not null)') }}{%- endif -%}
        {%- set v = value | string -%}
        {%- if op == 'contains' -%}
            {{ return('position(' ~ dbt_studio._lit(v) ~ ' in ' ~ expr ~ ') > 0') }}
        {%- endif -%}
        {{ return(('left(' if op == 'starts with' else 'right(') ~ expr ~ ', ' ~ (v | length) ~ ') = '
                  ~ dbt_studio._lit(v)) }}
    {%- elif op == 'is null' -%}
        {{ return(expr ~ ' is null') }}
    {%- elif op == 'is not null' -%}
        {{ return(expr ~ ' is not null') }}
    {%- elif op in ('within last days', 'more than days ago') -%}
        {%- if value is not number or value is sameas true or value is sameas false -%}
            {{ dbt_studio._cond_error(ctx, "'" ~ op ~ "' needs a number of days") }}
        {%- endif -%}
        {%- set start = dbt_studio._days_before(ctx.as_of, value) -%}
        {%- if op == 'within last days' -%}
            {{ return('(' ~ expr ~ ' >= ' ~ start ~ ' and ' ~ expr ~ ' <= ' ~ ctx.as_of ~ ')') }}
        {%- endif -%}
        {{ return(expr ~ ' < ' ~ start) }}
    {%- elif op in ('before', 'after') -%}
        {%- if value is none -%}{{ return('(null is not null)') }}{%- endif -%}
        {{ return(expr ~ (' < ' if op == 'before' else ' > ') ~ dbt_studio._lit(value)) }}
    {%- endif -%}
    {{ dbt_studio._cond_error(ctx, "unknown operator '" ~ op ~ "' (known: =, !=, <, <=, >, >=, in, not in, between, "
                              ~ "contains, starts with, ends with, is null, is not null, within last days, "
                              ~ "more than days ago, before, after)") }}
{% endmacro %}

{% macro _safe(sql, nullsafe) %}
    {{ return('coalesce((' ~ sql ~ '), false)' if nullsafe else sql) }}
{% endmacro %}

{#- One node of the condition tree, as a SQL predicate over `scope`. -#}
{% macro _cond(node, ctx, scope, nullsafe=false) %}
    {%- if node is not mapping -%}
        {{ dbt_studio._cond_error(ctx, "a condition must be a mapping, not " ~ node) }}
    {%- endif -%}
    {%- if 'and' in node or 'or' in node -%}
        {%- set kind = 'and' if 'and' in node else 'or' -%}
        {%- set parts = [] -%}
        {%- for child in node[kind] -%}
            {%- do parts.append('(' ~ dbt_studio._cond(child, ctx, scope, nullsafe) ~ ')') -%}
        {%- endfor -%}
        {%- if parts | length == 0 -%}{{ return('true' if kind == 'and' else 'false') }}{%- endif -%}
        {{ return('(' ~ (parts | join('\n        ' ~ kind ~ ' ')) ~ ')') }}
    {%- elif 'not' in node -%}
        {{ return('not (' ~ dbt_studio._cond(node['not'], ctx, scope, true) ~ ')') }}
    {%- elif 'column' in node -%}
        {%- do dbt_studio._check_column(ctx, scope.model, node.column) -%}
        {%- set column = scope.alias ~ '.' ~ node.column -%}
        {%- set compared = dbt_studio._compare(ctx, column, node.get('op'), node.get('value')) -%}
        {{ return(dbt_studio._safe(compared, nullsafe)) }}
    {%- elif 'has' in node or 'has not' in node -%}
        {{ return(dbt_studio._related(node, ctx, scope, nullsafe)) }}
    {%- elif 'performed' in node or 'did not perform' in node -%}
        {{ return(dbt_studio._event(node, ctx, scope, nullsafe)) }}
    {%- elif 'in audience' in node or 'not in audience' in node -%}
        {{ return(dbt_studio._membership(node, ctx, scope)) }}
    {%- endif -%}
    {{ dbt_studio._cond_error(ctx, "unknown condition " ~ (node.keys() | list) ~ " (use and / or / not, column, "
                              ~ "has / has not, performed / did not perform, in audience / not in audience)") }}
{% endmacro %}

{#- FROM clause of a path of hops: {from, first, last, corr (SQL correlating the first hop with `scope`), keys}. -#}
{% macro _path(ctx, hops, scope) %}
    {%- set aliases = [] -%}
    {%- set parts = [] -%}
    {%- for hop in hops -%}
        {%- set alias = dbt_studio._next(ctx, 'h') -%}
        {%- if loop.first -%}
            {%- do parts.append(dbt_studio._relation(ctx, hop.to) ~ ' as ' ~ alias) -%}
        {%- else -%}
            {%- set on = [] -%}
            {%- for p in hop.pairs -%}
                {%- do on.append(aliases[-1] ~ '.' ~ p[0] ~ ' = ' ~ alias ~ '.' ~ p[1]) -%}
            {%- endfor -%}
            {%- do parts.append('join ' ~ dbt_studio._relation(ctx, hop.to) ~ ' as ' ~ alias ~ ' on '
                                ~ (on | join(' and '))) -%}
        {%- endif -%}
        {%- do aliases.append(alias) -%}
    {%- endfor -%}
    {%- set corr = [] -%}
    {%- set keys = [] -%}
    {%- for p in hops[0].pairs -%}
        {%- do corr.append(aliases[0] ~ '.' ~ p[1] ~ ' = ' ~ scope.alias ~ '.' ~ p[0]) -%}
        {%- do keys.append({'inner': aliases[0] ~ '.' ~ p[1], 'outer': scope.alias ~ '.' ~ p[0]}) -%}
    {%- endfor -%}
    {{ return({
        'from': parts | join('\n            '),
        'first': aliases[0],
        'last': aliases[-1],
        'corr': corr | join(' and '),
        'keys': keys,
    }) }}
{% endmacro %}

{#-
    A per-scope aggregate CTE over the path's matching rows, LEFT JOINed to `scope`: {alias, columns} where
    columns[i] is the SQL of aggs[i] (count(*) coalesced to 0, so that "at most N" and "exactly 0" hold for scope rows
    without any matching row).
-#}
{% macro _aggregate(ctx, scope, path, inner, filters, aggs) %}
    {%- set name = dbt_studio._next(ctx, 'agg_') -%}
    {%- set selects = [] -%}
    {%- set groups = [] -%}
    {%- set on = [] -%}
    {%- for k in path['keys'] -%}
        {%- do selects.append(k.inner ~ ' as k' ~ loop.index0) -%}
        {%- do groups.append(k.inner) -%}
        {%- do on.append(name ~ '.k' ~ loop.index0 ~ ' = ' ~ k.outer) -%}
    {%- endfor -%}
    {%- set columns = [] -%}
    {%- for agg in aggs -%}
        {%- do selects.append(agg ~ ' as v' ~ loop.index0) -%}
        {%- set column = name ~ '.v' ~ loop.index0 -%}
        {%- do columns.append('coalesce(' ~ column ~ ', 0)' if agg.startswith('count(') else column) -%}
    {%- endfor -%}
    {%- set sql -%}
{{ name }} as (
    select {{ selects | join(', ') }}
    from {{ path.from }}
    {%- for j in inner.joins %}
    {{ j }}
    {%- endfor %}
    {%- if filters %}
    where {{ filters | join('\n      and ') }}
    {%- endif %}
    group by {{ groups | join(', ') }}
)
    {%- endset -%}
    {%- do ctx.ctes.append(sql) -%}
    {%- do scope.joins.append('left join ' ~ name ~ ' on ' ~ (on | join(' and '))) -%}
    {{ return({'alias': name, 'columns': columns}) }}
{% endmacro %}

{% macro _exists(path, inner, filters, negate) -%}
{{ 'not exists' if negate else 'exists' }} (
            select 1 from {{ path.from }}
            {%- for j in inner.joins %}
            {{ j }}
            {%- endfor %}
            where {{ ([path.corr] + filters) | join('\n              and ') }}
        )
{%- endmacro %}

{#- has / has not a related row (with `where` on the related rows and aggregate `having`). -#}
{% macro _related(node, ctx, scope, nullsafe) %}
    {%- set negate = 'has not' in node -%}
    {%- set target = node['has not'] if negate else node['has'] -%}
    {%- set hops = dbt_studio._hops(ctx.schema, scope.model, target, ctx.name) -%}
    {%- set path = dbt_studio._path(ctx, hops, scope) -%}
    {%- set inner = {'alias': path.last, 'model': hops[-1].to, 'joins': []} -%}
    {%- set filters = [] -%}
    {%- if node.get('where') is not none -%}
        {%- do filters.append(dbt_studio._cond(node.where, ctx, inner)) -%}
    {%- endif -%}
    {%- set having = node.get('having') -%}
    {%- if having is none -%}
        {{ return(dbt_studio._exists(path, inner, filters, negate)) }}
    {%- endif -%}
    {%- if negate -%}
        {{ dbt_studio._cond_error(ctx, "'has not' takes no 'having' (write has with having count = 0)") }}
    {%- endif -%}
    {%- set having = [having] if having is mapping else having -%}
    {%- set aggs = [] -%}
    {%- for h in having -%}
        {%- set fn = (h.get('agg') or 'count') | lower -%}
        {%- if fn not in ('count', 'sum', 'avg', 'min', 'max') -%}
            {{ dbt_studio._cond_error(ctx, "unknown aggregate '" ~ fn ~ "' (count, sum, avg, min, max)") }}
        {%- endif -%}
        {%- if fn == 'count' and not h.get('column') -%}
            {%- do aggs.append('count(*)') -%}
        {%- else -%}
            {%- do dbt_studio._check_column(ctx, inner.model, h.get('column')) -%}
            {%- do aggs.append(fn ~ '(' ~ path.last ~ '.' ~ h.column ~ ')') -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set agg = dbt_studio._aggregate(ctx, scope, path, inner, filters, aggs) -%}
    {%- set parts = [] -%}
    {%- for h in having -%}
        {%- set compared = dbt_studio._compare(ctx, agg.columns[loop.index0], h.get('op') or '>=', h.get('value')) -%}
        {%- do parts.append(dbt_studio._safe(compared, nullsafe)) -%}
    {%- endfor -%}
    {{ return('(' ~ (parts | join(' and ')) ~ ')') }}
{% endmacro %}

{#- performed / did not perform an event: `where`, a window (`within_days` N before as_of, or `between`
    [start, end)), `times` {op, value}, `first` / `last` {op: before | after | within last days | more than days ago,
    value}. -#}
{% macro _event(node, ctx, scope, nullsafe) %}
    {%- set negate = 'did not perform' in node -%}
    {%- set target = node['did not perform'] if negate else node['performed'] -%}
    {%- set hops = dbt_studio._hops(ctx.schema, scope.model, target, ctx.name) -%}
    {%- set event = ctx.schema.models[hops[-1].to] -%}
    {%- if not event.timestamp -%}
        {{ dbt_studio._cond_error(ctx, "model '" ~ event.name ~ "' is not an event model (no timestamp in its meta)") }}
    {%- endif -%}
    {%- set path = dbt_studio._path(ctx, hops, scope) -%}
    {%- set inner = {'alias': path.last, 'model': event.name, 'joins': []} -%}
    {%- set ts = path.last ~ '.' ~ event.timestamp -%}
    {%- set filters = [] -%}
    {%- if node.get('where') is not none -%}
        {%- do filters.append(dbt_studio._cond(node.where, ctx, inner)) -%}
    {%- endif -%}
    {%- if node.get('within_days') is not none -%}
        {%- do filters.append(dbt_studio._compare(ctx, ts, 'within last days', node.within_days)) -%}
    {%- endif -%}
    {%- if node.get('between') is not none -%}
        {%- if node.between | length != 2 -%}
            {{ dbt_studio._cond_error(ctx, "event 'between' needs [start, end]") }}
        {%- endif -%}
        {%- do filters.append(ts ~ ' >= ' ~ dbt_studio._lit(node.between[0]) ~ ' and ' ~ ts ~ ' < '
                              ~ dbt_studio._lit(node.between[1])) -%}
    {%- endif -%}
    {%- set checks = [] -%}
    {%- for key in ('times', 'first', 'last') if node.get(key) is not none -%}
        {%- do checks.append(key) -%}
    {%- endfor -%}
    {%- if negate or checks | length == 0 -%}
        {%- if negate and checks -%}
            {{ dbt_studio._cond_error(ctx, "'did not perform' takes no times / first / last "
                                      ~ "(write performed with times = 0)") }}
        {%- endif -%}
        {{ return(dbt_studio._exists(path, inner, filters, negate)) }}
    {%- endif -%}
    {%- set aggs = ['count(*)', 'min(' ~ ts ~ ')', 'max(' ~ ts ~ ')'] -%}
    {%- set agg = dbt_studio._aggregate(ctx, scope, path, inner, filters, aggs) -%}
    {%- set parts = [] -%}
    {%- for key in checks -%}
        {%- set spec = node[key] if node[key] is mapping else {'op': '>=', 'value': node[key]} -%}
        {%- set column = agg.columns[{'times': 0, 'first': 1, 'last': 2}[key]] -%}
        {%- set time_ops = ('before', 'after', 'within last days', 'more than days ago') -%}
        {%- if key != 'times' and (spec.get('op') or '') | lower not in time_ops -%}
            {{ dbt_studio._cond_error(ctx, "'" ~ key
                                      ~ "' needs op: before, after, within last days or more than days ago") }}
        {%- endif -%}
        {%- set compared = dbt_studio._compare(ctx, column, spec.get('op') or '>=', spec.get('value')) -%}
        {%- do parts.append(dbt_studio._safe(compared, nullsafe)) -%}
    {%- endfor -%}
    {{ return('(' ~ (parts | join(' and ')) ~ ')') }}
{% endmacro %}

{#- in audience / not in audience: membership of another audience model over the same parent. -#}
{% macro _membership(node, ctx, scope) %}
    {%- set negate = 'not in audience' in node -%}
    {%- set name = node['not in audience'] if negate else node['in audience'] -%}
    {%- set other = ctx.schema.models.get(name) -%}
    {%- if other is none or other.audience is none -%}
        {{ dbt_studio._cond_error(ctx, "'" ~ name ~ "' is not an audience model") }}
    {%- endif -%}
    {%- if other.audience.parent != scope.model -%}
        {{ dbt_studio._cond_error(ctx, "audience '" ~ name ~ "' is over '" ~ other.audience.parent ~ "', not '"
                                  ~ scope.model ~ "'") }}
    {%- endif -%}
    {%- set alias = dbt_studio._next(ctx, 'a') -%}
    {%- set on = [] -%}
    {%- for k in ctx.schema.models[scope.model].primary_key -%}
        {%- do on.append(alias ~ '.' ~ k ~ ' = ' ~ scope.alias ~ '.' ~ k) -%}
    {%- endfor -%}
    {{ return(('not exists' if negate else 'exists') ~ ' (select 1 from ' ~ dbt_studio._relation(ctx, name) ~ ' as '
              ~ alias ~ ' where ' ~ (on | join(' and ')) ~ ')') }}
{% endmacro %}

{#- Every model a tree names (conditions, `via`, traits), for parse-time refs. -#}
{% macro _tree_models(node, acc) %}
    {%- if node is mapping -%}
        {%- for key, value in node.items() -%}
            {%- set model_keys = ('has', 'has not', 'performed', 'did not perform', 'in audience', 'not in audience',
                                  'via', 'related') -%}
            {%- if key in model_keys -%}
                {%- for name in dbt_studio._as_list(value) -%}
                    {%- if name not in acc -%}{%- do acc.append(name) -%}{%- endif -%}
                {%- endfor -%}
            {%- elif key in ('and', 'or', 'not', 'where') -%}
                {%- do dbt_studio._tree_models(value, acc) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- elif node is iterable and node is not string -%}
        {%- for child in node -%}{%- do dbt_studio._tree_models(child, acc) -%}{%- endfor -%}
    {%- endif -%}
    {{ return(acc) }}
{% endmacro %}
