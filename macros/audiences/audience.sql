{#-
    An audience: one SELECT over a parent model, filtered by a condition tree, with traits and splits.

        {{ dbt_studio.audience(
            parent='stg_users',
            where={'and': [
                {'column': 'geo_region', 'op': '=', 'value': 'Southwest'},
                {'has': 'stg_purchases', 'where': {'column': 'price', 'op': '>', 'value': 20},
                 'having': {'agg': 'sum', 'column': 'price', 'op': '>=', 'value': 100}},
                {'performed': 'stg_product_viewed', 'within_days': 30, 'times': {'op': '>=', 'value': 3}},
            ]},
            columns=['geo_region'],
            traits=[{'name': 'lifetime_value', 'related': 'stg_purchases', 'agg': 'sum', 'column': 'price'}],
            splits={'groups': {'treatment': 90, 'holdout': 10}, 'holdout': 'holdout', 'salt': 'spring'},
        ) }}

    The tree format is documented in docs/audiences.md. The macro records its arguments in
    `config.meta.dbt_studio_audience` (so `dbt-studio audience preview` can size each condition) and ref()s every
    model the tree names, so dbt knows the audience's dependencies.
-#}
{% macro audience(parent, where=none, columns=none, traits=[], splits=none, as_of=none) %}
    {{ return(adapter.dispatch('audience', 'dbt_studio')(parent, where, columns, traits, splits, as_of)) }}
{% endmacro %}

{% macro default__audience(parent, where, columns, traits, splits, as_of) %}
    {%- set spec = {'parent': parent, 'where': where, 'columns': columns, 'traits': traits or [], 'splits': splits,
                    'as_of': as_of} -%}
    {%- do config(meta={'dbt_studio_audience': spec}) -%}
    {#- refs at parse time (dbt records dependencies then, when the schema in meta is not yet known) -#}
    {%- set names = dbt_studio._tree_models(where, [parent]) -%}
    {%- do dbt_studio._tree_models(traits or [], names) -%}
    {%- for name in names -%}
        {%- do ref(name) -%}
    {%- endfor -%}
    {%- if not execute -%}
        {{ return('select 1 as _parse_only') }}
    {%- endif -%}
    {%- set schema = dbt_studio._schema() -%}
    {{ return(dbt_studio._audience_sql(schema, model.name, spec, 'model', as_of)) }}
{% endmacro %}

{#- The SQL of an audience `spec` ({parent, where, columns, traits, splits}). -#}
{% macro _audience_sql(schema, name, spec, mode='model', as_of=none, select_override=none) %}
    {%- set ctx = {'schema': schema, 'mode': mode, 'name': name, 'as_of': dbt_studio._as_of_sql(as_of), 'ctes': [],
                   'n': []} -%}
    {%- do dbt_studio._check_audience_keys(name, spec) -%}
    {%- do dbt_studio._check_audience_references(schema, name, spec,
                                                 depends_on=model.depends_on.nodes if mode == 'model' else none) -%}
    {%- set parent = schema.models[spec.parent] -%}
    {%- set scope = {'alias': 'p', 'model': spec.parent, 'joins': []} -%}
    {%- set predicate = dbt_studio._cond(spec.where, ctx, scope) if spec.where is not none else none -%}
    {%- set selects = [] -%}
    {%- if spec.columns is none -%}
        {%- do selects.append('p.*') -%}
    {%- else -%}
        {%- set cols = [] -%}
        {%- for c in parent.primary_key + parent.labels + (spec.columns | list) if c not in cols -%}
            {%- do cols.append(c) -%}
        {%- endfor -%}
        {%- for c in cols -%}{%- do selects.append('p.' ~ c) -%}{%- endfor -%}
    {%- endif -%}
    {%- for trait in spec.traits or [] -%}
        {%- do selects.append(dbt_studio._trait(trait, ctx, scope) ~ ' as ' ~ trait.name) -%}
    {%- endfor -%}
    {%- if spec.splits -%}
        {%- do selects.extend(dbt_studio._splits(spec.splits, ctx, parent)) -%}
    {%- endif -%}
    {%- if select_override is not none -%}
        {%- set selects = select_override -%}
    {%- endif -%}
{%- if ctx.ctes %}
with {{ ctx.ctes | join(',\n') }}
{%- endif %}
select {{ selects | join(',\n    ') }}
from {{ dbt_studio._relation(ctx, spec.parent) }} as p
{%- for j in scope.joins %}
{{ j }}
{%- endfor %}
{%- if predicate is not none %}
where {{ predicate }}
{%- endif %}
{% endmacro %}

{#-
    A trait: {name, related (a model or a path), agg (count | sum | avg | min | max | first | last | most_frequent),
    column, where, order_by (first / last; default the event timestamp)}; count is 0 for parents without rows.
-#}
{% macro _trait(trait, ctx, scope) %}
    {%- set fn = (trait.get('agg') or 'count') | lower -%}
    {%- if not trait.get('name') or not trait.get('related') -%}
        {{ dbt_studio._cond_error(ctx, "a trait needs a name and a related model") }}
    {%- endif -%}
    {%- if fn not in ('count', 'sum', 'avg', 'min', 'max', 'first', 'last', 'most_frequent') -%}
        {{ dbt_studio._cond_error(ctx, "trait '" ~ trait.name ~ "': unknown agg '" ~ fn
                                  ~ "' (count, sum, avg, min, max, first, last, most_frequent)") }}
    {%- endif -%}
    {%- set hops = dbt_studio._hops(ctx.schema, scope.model, trait.related, ctx.name) -%}
    {%- set path = dbt_studio._path(ctx, hops, scope) -%}
    {%- set target = ctx.schema.models[hops[-1].to] -%}
    {%- set inner = {'alias': path.last, 'model': target.name, 'joins': []} -%}
    {%- set filters = [] -%}
    {%- if trait.get('where') is not none -%}
        {%- do filters.append(dbt_studio._cond(trait.where, ctx, inner)) -%}
    {%- endif -%}
    {%- if fn == 'count' and not trait.get('column') -%}
        {%- set agg = dbt_studio._aggregate(ctx, scope, path, inner, filters, ['count(*)']) -%}
        {{ return(agg.columns[0]) }}
    {%- endif -%}
    {%- set value = path.last ~ '.' ~ trait.column -%}
    {%- if fn in ('count', 'sum', 'avg', 'min', 'max') -%}
        {%- set agg = dbt_studio._aggregate(ctx, scope, path, inner, filters, [fn ~ '(' ~ value ~ ')']) -%}
        {{ return(agg.columns[0]) }}
    {%- endif -%}
    {#- first / last / most_frequent: one ranked row per key -#}
    {%- set name = dbt_studio._next(ctx, 'trait_') -%}
    {%- set keys = [] -%}
    {%- set on = [] -%}
    {%- for k in path['keys'] -%}
        {%- do keys.append(k.inner ~ ' as k' ~ loop.index0) -%}
        {%- do on.append(name ~ '.k' ~ loop.index0 ~ ' = ' ~ k.outer) -%}
    {%- endfor -%}
    {%- set partition = [] -%}
    {%- for k in path['keys'] -%}{%- do partition.append('k' ~ loop.index0) -%}{%- endfor -%}
    {%- if fn == 'most_frequent' -%}
        {%- do filters.append(value ~ ' is not null') -%}
        {%- set sql -%}
{{ name }} as (
    select {{ partition | join(', ') }}, v
    from (
        select {{ partition | join(', ') }}, v,
            row_number() over (partition by {{ partition | join(', ') }} order by n desc, v asc) as rn
        from (
            select {{ keys | join(', ') }}, {{ value }} as v, count(*) as n
            from {{ path.from }}
            {%- for j in inner.joins %}
            {{ j }}
            {%- endfor %}
            where {{ filters | join(' and ') }}
            group by {{ path['keys'] | map(attribute='inner') | join(', ') }}, {{ value }}
        ) counted
    ) ranked
    where rn = 1
)
        {%- endset -%}
    {%- else -%}
        {%- set order = trait.get('order_by') or target.timestamp -%}
        {%- if not order -%}
            {{ dbt_studio._cond_error(ctx, "trait '" ~ trait.name ~ "': " ~ fn
                                      ~ " needs order_by on a model without a timestamp") }}
        {%- endif -%}
        {%- set dir = 'asc' if fn == 'first' else 'desc' -%}
        {%- set sql -%}
{{ name }} as (
    select {{ partition | join(', ') }}, v
    from (
        select {{ keys | join(', ') }}, {{ value }} as v,
            row_number() over (
                partition by {{ path['keys'] | map(attribute='inner') | join(', ') }}
                order by {{ path.last }}.{{ order }} {{ dir }} nulls last, {{ value }} {{ dir }} nulls last
            ) as rn
        from {{ path.from }}
        {%- for j in inner.joins %}
        {{ j }}
        {%- endfor %}
        {%- if filters %}
        where {{ filters | join(' and ') }}
        {%- endif %}
    ) ranked
    where rn = 1
)
        {%- endset -%}
    {%- endif -%}
    {%- do ctx.ctes.append(sql) -%}
    {%- do scope.joins.append('left join ' ~ name ~ ' on ' ~ (on | join(' and '))) -%}
    {{ return(name ~ '.v') }}
{% endmacro %}

{#- splits: {groups: {name: percent, ...} (summing to 100), salt, holdout (a group name), column (default
    split_group)}: a deterministic bucket 0..9999 of hash(salt | primary key); the holdout group takes the last
    buckets and `is_holdout` marks it. -#}
{% macro _splits(splits, ctx, parent) %}
    {%- set groups = splits.get('groups') or {} -%}
    {%- set holdout = splits.get('holdout') -%}
    {%- if groups is not mapping or groups | length == 0 -%}
        {{ dbt_studio._cond_error(ctx, "splits need groups: {name: percent, ...}") }}
    {%- endif -%}
    {%- if holdout is not none and holdout not in groups -%}
        {{ dbt_studio._cond_error(ctx, "splits.holdout: '" ~ holdout ~ "' is not one of the groups") }}
    {%- endif -%}
    {%- set total = groups.values() | sum -%}
    {%- if (total * 100) | round | int != 10000 -%}
        {{ dbt_studio._cond_error(ctx, "splits.groups: percentages add up to " ~ total ~ ", not 100") }}
    {%- endif -%}
    {%- set ordered = [] -%}
    {%- for g in groups if g != holdout -%}{%- do ordered.append(g) -%}{%- endfor -%}
    {%- if holdout is not none -%}{%- do ordered.append(holdout) -%}{%- endif -%}
    {%- set keys = [] -%}
    {%- for k in parent.primary_key -%}{%- do keys.append('cast(p.' ~ k ~ ' as varchar)') -%}{%- endfor -%}
    {%- set bucket = dbt_studio._hash_bucket(dbt_studio.string_literal((splits.get('salt') or '') ~ '|') ~ ' || '
                                             ~ (keys | join(" || '|' || "))) -%}
    {%- set cases = [] -%}
    {%- set upto = [0] -%}
    {%- for g in ordered -%}
        {%- do upto.append(upto[-1] + (groups[g] * 100) | round | int) -%}
        {%- if not loop.last -%}
            {%- do cases.append('when ' ~ bucket ~ ' < ' ~ upto[-1] ~ ' then ' ~ dbt_studio.string_literal(g)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set last = dbt_studio.string_literal(ordered[-1]) -%}
    {%- set out = [(('case ' ~ (cases | join(' ')) ~ ' else ' ~ last ~ ' end') if cases else last) ~ ' as '
                    ~ (splits.get('column') or 'split_group')] -%}
    {%- if holdout is not none -%}
        {%- do out.append('(' ~ bucket ~ ' >= ' ~ upto[-2] ~ ') as is_holdout') -%}
    {%- endif -%}
    {{ return(out) }}
{% endmacro %}
