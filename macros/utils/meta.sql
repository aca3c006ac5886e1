{#-
    The `config.meta.dbt_studio` dict of a model, deep-merged over `base`.

    dbt merges `meta` only one level deep, so a model's `meta.dbt_studio` would replace the
    project's `+meta.dbt_studio` whole; callers pass the project-level dict as `base` when they
    want both.
-#}
{% macro meta_config(node=none, base={}) %}
    {{ return(adapter.dispatch('meta_config', 'dbt_studio')(node, base)) }}
{% endmacro %}

{% macro default__meta_config(node=none, base={}) %}
    {%- if node is none -%}
        {%- set meta = config.get('meta') or {} -%}
    {%- else -%}
        {%- set meta = node.config.meta or {} -%}
    {%- endif -%}
    {{ return(dbt_studio._deep_merge(base, meta.get('dbt_studio', {}))) }}
{% endmacro %}

{% macro _deep_merge(base, override) %}
    {%- set merged = {} -%}
    {%- do merged.update(base) -%}
    {%- for key, value in override.items() -%}
        {%- if key in merged and merged[key] is mapping and value is mapping -%}
            {%- do merged.update({key: dbt_studio._deep_merge(merged[key], value)}) -%}
        {%- else -%}
            {%- do merged.update({key: value}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(merged) }}
{% endmacro %}
