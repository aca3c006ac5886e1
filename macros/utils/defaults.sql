{#-
    Every package-wide setting and its default, in one place.

    A root project overrides a setting with a var of the same name, prefixed `dbt_studio_`
    (e.g. `vars: {dbt_studio_stitch_max_rounds: 50}`); vars set in this package's own
    dbt_project.yml would be invisible to root-project models, so defaults live here instead.
-#}
{% macro defaults() %}
    {{ return(adapter.dispatch('defaults', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__defaults() %}
    {{ return({
        'state_schema_suffix': '_dbt_studio',
        'stitch_max_rounds': 40,
        'stitch_lookback_hours': none,
        'stitch_blocklist': ['', 'null', 'none', 'nil', 'undefined', 'unknown', 'nan', 'n/a', 'na', '-1', '0',
                             'anonymous', 'test', 'test@test.com', 'test@example.com'],
        'stitch_blocklist_regex': ['^[0-]*$', '^\\s*$'],
        'changelog_retention_days': 30,
        'max_cluster_size_warn': 1000,
        'max_cluster_size_error': 10000,
        'sync_duckdb_memory_limit': '512MB',
        'stitch_duckdb_memory_limit': none,
        'as_of': none,
    }) }}
{% endmacro %}

{#- The value of one setting: the root project's `dbt_studio_<name>` var, else the default. -#}
{% macro setting(name) %}
    {{ return(adapter.dispatch('setting', 'dbt_studio')(name)) }}
{% endmacro %}

{% macro default__setting(name) %}
    {%- set all = dbt_studio.defaults() -%}
    {%- if name not in all -%}
        {{ exceptions.raise_compiler_error("dbt_studio: unknown setting '" ~ name ~ "'; known settings: "
                                           ~ (all.keys() | list | sort | join(', '))) }}
    {%- endif -%}
    {{ return(var('dbt_studio_' ~ name, all[name])) }}
{% endmacro %}
