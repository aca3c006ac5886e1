{#-
    Where the plant store's raw data comes from: the small fixed seeds by default, or the Parquet files
    written by `dbt-studio generate` when the `raw_data_dir` var is set (DuckDB only).
-#}
{% macro raw(name) -%}
    {%- set data_dir = var('raw_data_dir', none) -%}
    {%- if data_dir -%}
        read_parquet('{{ data_dir }}/{{ name }}.parquet')
    {%- else -%}
        {{ ref('raw_' ~ name) }}
    {%- endif -%}
{%- endmacro %}
