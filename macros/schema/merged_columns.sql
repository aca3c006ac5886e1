{#-
    A related or event model with the columns of the model on the one side of a relationship merged onto it
    (Customer Studio's "merge columns"): the model's rows, unchanged in number, plus `<relationship>__<column>`
    for each merged column.

        -- models/purchases_with_user.sql
        {{ dbt_studio.merged_columns('stg_purchases') }}

    Which columns: every relationship of the model with `merge_columns: true` (all documented columns of the
    other model) or `merge_columns: [col, ...]`. Merging follows the cardinality: either way for 1:1, from the one
    side onto the many side for many:1; a merge declared on the one side of 1:many fails naming the model.
    `relationships` restricts the merge to some relationship names.

    The data must agree with the cardinality: before any row is written, each merged model is checked to have at
    most one row per join key (`merge_key_repeats_sql`, one grouped query of that model); a key that repeats
    would repeat the rows of `model_name`, so the build fails naming the file, model, relationship, declared
    cardinality and one repeated key.
-#}
{% macro merged_columns(model_name, relationships=none) %}
    {{ return(adapter.dispatch('merged_columns', 'dbt_studio')(model_name, relationships)) }}
{% endmacro %}

{% macro default__merged_columns(model_name, relationships) %}
    {%- do ref(model_name) -%}
    {%- if not execute -%}{{ return('select 1 as _parse_only') }}{%- endif -%}
    {%- set schema = dbt_studio._schema() -%}
    {%- set base = schema.models.get(model_name) -%}
    {%- if base is none -%}
        {{ exceptions.raise_compiler_error("dbt_studio: merged_columns: unknown model '" ~ model_name ~ "'") }}
    {%- endif -%}
    {%- set joins = [] -%}
    {%- set selects = ['m.*'] -%}
    {%- for rel in base.relationships.values() if rel.merge_columns
                                                and (relationships is none or rel.name in relationships) -%}
        {%- set other = schema.models[rel.to] -%}
        {%- if other.unique_id not in model.depends_on.nodes -%}
            {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model.name ~ "': merged_columns reads '" ~ rel.to
                                               ~ "'; add -- depends_on: {{ ref('" ~ rel.to ~ "') }} to the model") }}
        {%- endif -%}
        {%- set cols = dbt_studio._model_columns(schema, rel.to) if rel.merge_columns is sameas true
                       else dbt_studio._as_list(rel.merge_columns) -%}
        {%- if cols | length == 0 -%}
            {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model_name ~ "': relationship '" ~ rel.name
                                               ~ "': merge_columns: true needs the columns of '" ~ rel.to
                                               ~ "' documented (or list them)") }}
        {%- endif -%}
        {%- do dbt_studio._check_merge_key(schema, base, rel) -%}
        {%- set alias = 'r' ~ loop.index -%}
        {%- set on = [] -%}
        {%- for p in rel.pairs -%}{%- do on.append('m.' ~ p[0] ~ ' = ' ~ alias ~ '.' ~ p[1]) -%}{%- endfor -%}
        {%- do joins.append('left join ' ~ ref(rel.to) ~ ' as ' ~ alias ~ ' on ' ~ (on | join(' and '))) -%}
        {%- for c in cols -%}{%- do selects.append(alias ~ '.' ~ c ~ ' as ' ~ rel.name ~ '__' ~ c) -%}{%- endfor -%}
    {%- endfor -%}
    {%- if joins | length == 0 -%}
        {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model_name
                                           ~ "': no relationship with merge_columns to merge") }}
    {%- endif -%}
select {{ selects | join(',\n    ') }}
from {{ ref(model_name) }} as m
{%- for j in joins %}
{{ j }}
{%- endfor %}
{% endmacro %}

{#- Fail the build when `rel.to` has more than one row for a join key: the cardinality declared on `base` says it
    has at most one, and a left join would repeat base's rows. -#}
{% macro _check_merge_key(schema, base, rel) %}
    {%- set repeat = dbt_studio._merge_key_repeat(rel, ref(rel.to)) -%}
    {%- if repeat is none -%}{{ return(none) }}{%- endif -%}
    {{ exceptions.raise_compiler_error("dbt_studio: " ~ (base.file or base.name) ~ ": model '" ~ base.name
                                       ~ "': " ~ repeat ~ ": merging its columns into '" ~ model.name
                                       ~ "' would repeat rows of '" ~ base.name ~ "'; fix the cardinality (and "
                                       ~ "merge from the other side) or the data") }}
{% endmacro %}

{#- "relationship 'user' is declared many:1, but 'stg_users' has 2 rows with user_id = 7" when the model on the one
    side of `rel` (read at `relation`) has more than one row for a join key (one grouped query), else none. Null
    keys join nothing and are not counted. The studio's breakdown by a merged column asks it too. -#}
{% macro _merge_key_repeat(rel, relation) %}
    {%- set keys = rel.pairs | map('last') | list -%}
    {%- set found = run_query(dbt_studio.merge_key_repeats_sql(relation, keys)) -%}
    {%- if found is none or found.rows | length == 0 -%}{{ return(none) }}{%- endif -%}
    {%- set row = found.rows[0] -%}
    {%- set shown = [] -%}
    {%- for k in keys -%}
        {%- do shown.append(k ~ ' = ' ~ dbt_studio._shown(row[loop.index0])) -%}
    {%- endfor -%}
    {{ return("relationship '" ~ rel.name ~ "' is declared " ~ rel.cardinality ~ ", but '" ~ rel.to ~ "' has "
              ~ row[keys | length] ~ " rows with " ~ (shown | join(' and '))) }}
{% endmacro %}

{#- One join key of `relation` that more than one row has, with how many (`occurrences`), or no row. -#}
{% macro merge_key_repeats_sql(relation, keys) %}
    {{ return(adapter.dispatch('merge_key_repeats_sql', 'dbt_studio')(relation, keys)) }}
{% endmacro %}

{% macro default__merge_key_repeats_sql(relation, keys) %}
select {{ keys | join(', ') }}, count(*) as occurrences
from {{ relation }}
where {% for k in keys %}{{ k }} is not null{{ ' and ' if not loop.last }}{% endfor %}
group by {{ keys | join(', ') }}
having count(*) > 1
order by count(*) desc, {{ keys | join(", ") }}
limit 1
{% endmacro %}
