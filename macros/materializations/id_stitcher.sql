{#-
    materialized='id_stitcher': one row per identifier with the `main_id` of the person it belongs to.

    The model's SQL is `dbt_studio.id_edges(...)`. A run screens identifiers, caps over-linked ones, finds
    connected components, and writes three relations:
      <model>                  main_id, id_type, id_value, first_seen_at, last_seen_at
      <model>__id_changes      append-only log of main_id merges (old_main_id, new_main_id, reason, changed_at)
      <model>__rejected_ids    what screening and caps dropped, why, and how often
    Incremental by default: only source rows newer than the last run (minus a lookback) are read, and every
    prior cluster enters the graph as one node, so a run can merge clusters but never split them. A new
    cluster's main_id derives from its earliest-seen identifier; on a merge the earliest prior main_id
    survives. `--full-refresh` rebuilds from all rows (the way to split after changing the screening rules).

    Settings in `config(meta={'dbt_studio': {...}})`: max_rounds, lookback_hours (defaults: vars
    dbt_studio_stitch_max_rounds, dbt_studio_stitch_lookback_hours).
-#}
{% materialization id_stitcher, default %}
    {%- set settings = dbt_studio.meta_config() -%}
    {%- set max_rounds = settings.get('max_rounds', dbt_studio.setting('stitch_max_rounds')) | int -%}
    {%- set lookback_hours = settings.get('lookback_hours', dbt_studio.setting('stitch_lookback_hours')) | int -%}

    {%- set target = this.incorporate(type='table') -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set incremental = existing is not none and not should_full_refresh() -%}
    {%- if existing is not none and not existing.is_table -%}
        {%- do adapter.drop_relation(existing) -%}
        {%- set incremental = false -%}
    {%- endif -%}
    {%- set prior = target if incremental else none -%}
    {%- set work = {} -%}
    {%- for name in ['obs', 'capped', 'nodes', 'clusters', 'edges', 'labels', 'result'] -%}
        {%- do work.update({name: dbt_studio._work_relation(target, '__stitch_' ~ name)}) -%}
    {%- endfor -%}
    {%- set staged = dbt_studio._sibling(target, '__stitch_staged') -%}
    {%- set clusters = work.clusters if incremental else none -%}
    {%- set changes = dbt_studio._sibling(target, '__id_changes') -%}
    {%- set rejected = dbt_studio._sibling(target, '__rejected_ids') -%}

    {{ run_hooks(pre_hooks) }}

    {%- do run_query(dbt_studio._create_work_table(work.obs, dbt_studio._stitch_observations_sql(sql, prior, lookback_hours))) -%}
    {%- do run_query(dbt_studio._create_work_table(work.capped, dbt_studio._stitch_capped_sql(work.obs))) -%}
    {%- do run_query(dbt_studio._create_work_table(work.nodes, dbt_studio._stitch_nodes_sql(work.obs))) -%}
    {%- if incremental -%}
        {%- do run_query(dbt_studio._create_work_table(work.clusters, dbt_studio._stitch_clusters_sql(work.nodes, prior))) -%}
    {%- endif -%}
    {%- do run_query(dbt_studio._create_work_table(work.edges, dbt_studio._stitch_edges_sql(work.obs, work.capped, work.nodes, clusters))) -%}
    {%- set rounds = dbt_studio.connected_components(work.edges, work.labels, max_rounds, this.name) -%}
    {%- do log("dbt_studio: " ~ this.name ~ ": connected components converged in " ~ rounds ~ " rounds", info=true) -%}
    {%- do run_query(dbt_studio._create_work_table(work.result, dbt_studio._stitch_result_sql(work.nodes, clusters, work.labels))) -%}

    {#- side tables first: the change log and the rejections are written before the output is replaced -#}
    {%- if load_cached_relation(changes) is none -%}
        {%- do run_query(dbt_studio._create_table_as(changes, dbt_studio._stitch_changes_sql(work.result, empty=true))) -%}
    {%- endif -%}
    {%- if incremental -%}
        {%- do run_query(dbt_studio._insert_into(changes, dbt_studio._stitch_changes_sql(work.result))) -%}
    {%- endif -%}
    {%- if incremental and load_cached_relation(rejected) is not none -%}
        {%- do run_query(dbt_studio._insert_into(rejected, dbt_studio._stitch_rejected_sql(work.obs, work.capped))) -%}
    {%- else -%}
        {%- do run_query(dbt_studio._create_table_as(rejected, dbt_studio._stitch_rejected_sql(work.obs, work.capped))) -%}
    {%- endif -%}

    {%- call statement('main') -%}
        {{ dbt_studio._create_table_as(staged, dbt_studio._stitch_output_sql(work.nodes, work.result, prior)) }}
    {%- endcall -%}
    {%- do dbt_studio._replace_table(staged, target) -%}
    {%- for relation in work.values() -%}
        {%- do adapter.drop_relation(relation) -%}
    {%- endfor -%}

    {{ run_hooks(post_hooks) }}
    {%- do adapter.commit() -%}
    {{ return({'relations': [target]}) }}
{% endmaterialization %}
