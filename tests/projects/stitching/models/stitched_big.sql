{#- A large graph for the memory-cap test: DuckDB only, built when the test passes the CSV's path. -#}
{{ config(materialized='id_stitcher', enabled=(target.type == 'duckdb' and var('big_rows', none) is not none)) }}

{{ dbt_studio.id_edges(
    sources=[{'relation': "read_csv('" ~ var('big_rows', '') ~ "', all_varchar = true)", 'name': 'big_rows',
              'ids': {'a': 'id_a', 'b': 'id_b', 'c': 'id_c'}, 'timestamp': 'ts'}]
) }}
