{#- The package's version, the same as its dbt_project.yml: the runner (`dbt-studio`) checks that it matches its own
    and says so in one line when packages.yml installed another release. -#}
{% macro dbt_studio_version() %}
    {{ return(adapter.dispatch('dbt_studio_version', 'dbt_studio')()) }}
{% endmacro %}

{% macro default__dbt_studio_version() %}
    {{ return('0.1.0') }}
{% endmacro %}
