{#-
    A parent model's primary key must be unique and not null (audiences, splits and syncs key on it).

        models:
          - name: stg_users
            data_tests: [dbt_studio.unique_primary_key]

    The key comes from the model's `config.meta.dbt_studio.primary_key` (or the `primary_key` argument). Failing
    rows: each duplicated or null key with how often it occurs.
-#}
{% test unique_primary_key(model, primary_key=none) %}
    {{ return(adapter.dispatch('test_unique_primary_key', 'dbt_studio')(model, primary_key)) }}
{% endtest %}

{% macro default__test_unique_primary_key(model, primary_key) %}
    {%- set keys = dbt_studio._as_list(primary_key) -%}
    {%- if keys | length == 0 and execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model'
                                                and (node.alias or node.name) | lower == model.identifier | lower
                                                and (node.schema | lower) == (model.schema | lower) -%}
            {%- set meta = (node.config.meta or {}).get('dbt_studio') or {} -%}
            {%- do keys.extend(dbt_studio._as_list(meta.get('primary_key'))) -%}
        {%- endfor -%}
        {%- if keys | length == 0 -%}
            {{ exceptions.raise_compiler_error("dbt_studio: unique_primary_key on '" ~ model.identifier
                                               ~ "': the model has no meta.dbt_studio.primary_key "
                                               ~ "(or pass primary_key)") }}
        {%- endif -%}
    {%- endif -%}
    {%- if keys | length == 0 -%}{%- set keys = ['1'] -%}{%- endif -%}
select {{ keys | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ keys | join(', ') }}
having count(*) > 1
    {%- for k in keys %} or {{ k }} is null{% endfor %}
{% endmacro %}
