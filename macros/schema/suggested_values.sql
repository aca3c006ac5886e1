{#-
    Suggested values for the audience builder: for every column flagged `suggestions: true` in its column meta
    (`columns: - name: geo_region, config: {meta: {dbt_studio: {suggestions: true}}}`), the most frequent
    non-null values with their counts, up to `limit` per column (ties: smaller value first).

        -- models/suggested_values.sql
        {{ dbt_studio.suggested_values(['stg_users', 'stg_purchases'], limit=100) }}

    Output: model_name, column_name, value (as a string), occurrences, value_rank.
-#}
{% macro suggested_values(models, limit=100) %}
    {{ return(adapter.dispatch('suggested_values', 'dbt_studio')(models, limit)) }}
{% endmacro %}

{% macro default__suggested_values(models, limit) %}
    {%- for name in models -%}{%- do ref(name) -%}{%- endfor -%}
    {%- if not execute -%}{{ return('select 1 as _parse_only') }}{%- endif -%}
    {%- set nodes = dbt_studio._schema_nodes() -%}
    {%- set parts = [] -%}
    {%- for name in models -%}
        {%- if name not in nodes -%}
            {{ exceptions.raise_compiler_error("dbt_studio: suggested_values: unknown model '" ~ name ~ "'") }}
        {%- endif -%}
        {%- for column, cmeta in nodes[name].column_meta.items() if cmeta.get('suggestions') -%}
            {%- set part -%}
    select {{ dbt_studio.string_literal(name) }} as model_name, {{ dbt_studio.string_literal(column) }} as column_name,
        cast({{ column }} as varchar) as value, count(*) as occurrences
    from {{ ref(name) }}
    where {{ column }} is not null
    group by {{ column }}
            {%- endset -%}
            {%- do parts.append(part) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if parts | length == 0 -%}
        {{ exceptions.raise_compiler_error("dbt_studio: suggested_values: no column of " ~ (models | join(', '))
                                           ~ " has suggestions: true in its meta.dbt_studio") }}
    {%- endif -%}
select model_name, column_name, value, occurrences, value_rank
from (
    select counted.*,
        row_number() over (partition by model_name, column_name order by occurrences desc, value asc) as value_rank
    from (
{{ parts | join('\n    union all\n') }}
    ) counted
) ranked
where value_rank <= {{ limit | int }}
{% endmacro %}
