{#-
    Shared pieces of the studio's insight queries: a draft audience (a spec the builder holds, not yet saved) over
    the schema read from manifest.json. Each public studio macro returns the SQL of one query; the studio runs it
    on its one connection, with a timeout, and caches the rows by that SQL until the next build.
-#}

{#- A compile context for `spec` in preview mode (relations by name from the manifest). -#}
{% macro _studio_ctx(schema, spec) %}
    {%- set ctx = {'schema': schema, 'mode': 'preview', 'name': spec.get('name') or 'studio draft',
                   'as_of': dbt_studio._as_of_sql(spec.get('as_of')), 'ctes': [], 'n': []} -%}
    {%- set parent = schema.models.get(spec.parent) -%}
    {%- if parent is none or parent.model_type != 'parent' or not parent.primary_key -%}
        {{ dbt_studio._cond_error(ctx, "'" ~ spec.parent ~ "' is not a parent model") }}
    {%- endif -%}
    {{ return(ctx) }}
{% endmacro %}

{#- The top-level conditions of a tree: the children of a top-level `and`, else the tree itself. -#}
{% macro _studio_conditions(where) %}
    {%- if where is none -%}
        {{ return([]) }}
    {%- elif where is mapping and where.keys() | list == ['and'] -%}
        {{ return(where['and']) }}
    {%- endif -%}
    {{ return([where]) }}
{% endmacro %}

{#- The split group expression of `splits` (without its alias) and the groups in bucket order. -#}
{% macro _studio_split_expr(splits, ctx, parent) %}
    {%- set column = splits.get('column') or 'split_group' -%}
    {%- set sql = dbt_studio._splits(splits, ctx, parent)[0] -%}
    {{ return(sql[:sql | length - (' as ' ~ column) | length]) }}
{% endmacro %}

{#- `with` + the compile context's CTEs, or nothing. -#}
{% macro _studio_with(ctx) -%}
    {%- if ctx.ctes -%}
with {{ ctx.ctes | join(',\n') }}
    {%- endif -%}
{%- endmacro %}
