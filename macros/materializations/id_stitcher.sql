{#-
    materialized='id_stitcher': one row per identifier with the `main_id` of the person it belongs to.

    The model's SQL is `dbt_studio.id_edges(...)`. A run screens identifiers, caps over-linked ones, finds
    connected components, and writes these relations:
      <model>                   main_id, id_type, id_value, first_seen_at, last_seen_at
      <model>__id_changes       append-only log of main_id merges (old_main_id, new_main_id, reason, changed_at)
      <model>__rejected_ids     what screening and caps dropped, why, and how often
      <model>__cap_links        (caps and loaded_at or a lookback) every link under a cap read so far
      <model>__screening_rules  the digest of the screening rules the graph was built under
    Incremental by default: every source row is read and compared with the output (a scan and anti-joins),
    so rows that arrive late, whatever their timestamps, are never missed; only rows that add an identifier,
    link two clusters or move a first/last seen enter the graph, and every prior cluster they touch enters
    as one node, so a run can merge clusters but never split them. The output's changed rows are written in
    the run's transaction (a MERGE; on DuckDB a delete and an append, cheaper than updates in place). A new
    cluster's main_id derives from its earliest-seen identifier; on a merge the earliest prior main_id
    survives. `--full-refresh` rebuilds from all rows, and so does a run whose screening rules (ids, normalize,
    blocklists, caps, trust) changed since the graph was built: an incremental run never splits a cluster. A
    run that newly caps an identifier (max_edges) whose links had merged people rebuilds from all rows in the same
    run, or, reading from watermarks, stops before writing and asks for --full-refresh.
    A source with `loaded_at` is read from its watermark instead (rows loaded after the newest one the last run
    read; id_edges chooses and says so in a comment this reads back); watermarks are written last, in
    <model>__watermarks.

    Settings in `config(meta={'dbt_studio': {...}})`: max_rounds, lookback_hours (defaults: vars
    dbt_studio_stitch_max_rounds, dbt_studio_stitch_lookback_hours). lookback_hours is off by default: set it
    only when every source's timestamps follow load order; incremental runs then read only rows newer than
    the output's newest last_seen_at minus the lookback.
-#}
{% materialization id_stitcher, default %}
    {%- set settings = dbt_studio.meta_config() -%}
    {%- set max_rounds = settings.get('max_rounds', dbt_studio.setting('stitch_max_rounds')) -%}
    {%- if not (max_rounds | string).strip().isdigit() or max_rounds | int < 1 -%}
        {{ exceptions.raise_compiler_error("id_stitcher model '" ~ this.name ~ "': max_rounds (meta.dbt_studio, else "
                                           ~ "var dbt_studio_stitch_max_rounds) is '" ~ max_rounds
                                           ~ "', not a whole number of rounds of 1 or more") }}
    {%- endif -%}
    {%- set max_rounds = max_rounds | int -%}
    {%- set lookback_hours = settings.get('lookback_hours', dbt_studio.setting('stitch_lookback_hours')) -%}
    {%- set lookback_hours = none if lookback_hours is none or lookback_hours == '' else lookback_hours | int -%}

    {%- set target = this.incorporate(type='table') -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set reads = dbt_studio._stitch_reads(sql) -%}
    {%- set incremental = dbt_studio._stitch_is_incremental(reads.get('rules')) -%}
    {%- set rules_changed = not incremental and existing is not none and existing.is_table
                            and not should_full_refresh() -%}
    {%- if existing is not none and not existing.is_table -%}
        {%- do adapter.drop_relation(existing) -%}
    {%- endif -%}
    {%- if rules_changed -%}
        {%- do log("dbt_studio: " ~ this.name ~ ": the screening rules changed since the id graph was built (ids, "
                   ~ "normalize, blocklists, include / exclude, max_edges, trust); rebuilding it from all rows, as "
                   ~ "--full-refresh would", info=true) -%}
    {%- endif -%}
    {%- if reads.since and not incremental -%}
        {{ exceptions.raise_compiler_error("id_stitcher model '" ~ this.name ~ "': a full build on rows read "
                                           ~ "since a watermark (nothing was written)") }}
    {%- endif -%}
    {%- for name, since in reads.since.items() -%}
        {%- do log("dbt_studio: " ~ this.name ~ ": source '" ~ name ~ "' read from loaded_at > " ~ since, info=true) -%}
    {%- endfor -%}
    {%- set work = {} -%}
    {%- for name in ['obs', 'capped', 'nodes', 'clusters', 'edges', 'labels', 'result'] -%}
        {%- do work.update({name: dbt_studio._work_relation(target, '__stitch_' ~ name)}) -%}
    {%- endfor -%}
    {%- set staged = dbt_studio._sibling(target, '__stitch_staged') -%}
    {%- set changes = dbt_studio._sibling(target, '__id_changes') -%}
    {%- set rejected = dbt_studio._sibling(target, '__rejected_ids') -%}
    {%- set watermarks = dbt_studio._sibling(target, '__watermarks') -%}
    {%- set cap_links = dbt_studio._sibling(target, '__cap_links') -%}
    {%- set caps = reads.get('caps', false) -%}
    {#- runs that read only newly loaded rows count caps over the links earlier runs read too -#}
    {%- set keeps_history = caps and (reads.read_keys | length > 0 or lookback_hours is not none) -%}
    {%- set history = load_cached_relation(cap_links) if incremental and keeps_history else none -%}

    {{ run_hooks(pre_hooks) }}
    {%- set capped_memory = dbt_studio.stitch_session_start(this.name, incremental) -%}

    {%- set narrow = reads.since | length > 0 and reads.since | length == reads.sources | length -%}
    {%- set prior = target if incremental else none -%}
    {%- set obs_sql = dbt_studio._stitch_observations_sql(sql, prior, lookback_hours, narrow) -%}
    {%- do run_query(dbt_studio._create_work_table(work.obs, obs_sql)) -%}
    {%- do run_query(dbt_studio._create_work_table(work.capped, dbt_studio._stitch_capped_sql(work.obs, history))) -%}
    {%- set reached = dbt_studio._stitch_caps_reached(work.obs, work.capped, target, load_cached_relation(rejected),
                                                      history, keeps_history, reads.since)
                      if incremental and caps else '' -%}
    {%- if reached and reads.since -%}
        {%- do dbt_studio._drop_work_tables(work.values() | list) -%}
        {%- do dbt_studio.stitch_session_end(this.name, capped_memory) -%}
        {{ exceptions.raise_compiler_error("id_stitcher model '" ~ this.name ~ "': " ~ reached ~ ". Links made "
            ~ "before the cap was reached merged people a full build keeps apart, and this run reads only rows "
            ~ "loaded since the last one (loaded_at), so it cannot split them: run dbt build -s " ~ this.name
            ~ " --full-refresh (nothing was written)") }}
    {%- elif reached -%}
        {#- a cap newly reached on links that merged people: rebuilt from all rows, as --full-refresh would -#}
        {%- do log("dbt_studio: " ~ this.name ~ ": " ~ reached ~ "; rebuilding the id graph from all rows, as "
                   ~ "--full-refresh would, so no one stays merged through it", info=true) -%}
        {%- do dbt_studio.stitch_session_end(this.name, capped_memory) -%}
        {%- set incremental = false -%}
        {%- set history = none -%}
        {%- set capped_memory = dbt_studio.stitch_session_start(this.name, false) -%}
        {%- set obs_sql = dbt_studio._stitch_observations_sql(sql, none, none) -%}
        {%- do run_query(dbt_studio._create_work_table(work.obs, obs_sql)) -%}
        {%- do run_query(dbt_studio._create_work_table(work.capped, dbt_studio._stitch_capped_sql(work.obs))) -%}
    {%- endif -%}
    {%- set prior = target if incremental else none -%}
    {%- set clusters = work.clusters if incremental else none -%}
    {%- do run_query(dbt_studio._create_work_table(work.nodes, dbt_studio._stitch_nodes_sql(work.obs, incremental))) -%}
    {%- if incremental -%}
        {%- set clusters_sql = dbt_studio._stitch_clusters_sql(work.nodes, prior) -%}
        {%- do run_query(dbt_studio._create_work_table(work.clusters, clusters_sql)) -%}
    {%- endif -%}
    {%- set edges_sql = dbt_studio._stitch_edges_sql(work.obs, work.capped, work.nodes, clusters) -%}
    {%- do run_query(dbt_studio._create_work_table(work.edges, edges_sql)) -%}
    {%- set rounds = dbt_studio.connected_components(work.edges, work.labels, max_rounds, this.name) -%}
    {%- do log("dbt_studio: " ~ this.name ~ ": connected components converged in " ~ rounds ~ " rounds", info=true) -%}
    {%- set result_sql = dbt_studio._stitch_result_sql(work.nodes, clusters, work.labels) -%}
    {%- if incremental -%}
        {%- do run_query(dbt_studio._create_work_table(work.result, result_sql)) -%}
    {%- endif -%}

    {#- side tables first: the change log and the rejections are written before the output is replaced -#}
    {%- set side = [] -%}
    {%- if load_cached_relation(changes) is none -%}
        {%- do side.append(dbt_studio._create_table_as(changes, dbt_studio._stitch_changes_sql(none))) -%}
    {%- endif -%}
    {%- if incremental -%}
        {%- do side.append(dbt_studio._insert_into(changes, dbt_studio._stitch_changes_sql(work.result))) -%}
    {%- endif -%}
    {#- rejections: rebuilt from every row when every row was read; else those of the sources read in full are
        replaced and the others' appended -#}
    {%- set partial = lookback_hours is not none or reads.since -%}
    {%- set rejected_sql = dbt_studio._stitch_rejected_sql(work.obs, work.capped) -%}
    {%- if incremental and partial and load_cached_relation(rejected) is not none -%}
        {%- if lookback_hours is none -%}
            {%- set read_in_full = reads.sources | reject('in', reads.since) | list -%}
            {%- do side.append(dbt_studio._stitch_forget_rejections_sql(rejected, read_in_full)) -%}
        {%- else -%}
            {%- do dbt_studio._stitch_rejections_have_loaded_at(rejected) -%}
        {%- endif -%}
        {%- do side.append(dbt_studio._insert_into(rejected, rejected_sql)) -%}
    {%- else -%}
        {%- do side.append(dbt_studio._create_table_as(rejected, rejected_sql)) -%}
    {%- endif -%}
    {%- do dbt_studio._run_statements(side) -%}

    {%- if incremental -%}
        {%- call statement('main') -%}
            {{ dbt_studio._stitch_merge_sql(target, work.clusters, work.result) }}
        {%- endcall -%}
    {%- else -%}
        {%- call statement('main') -%}
            {{ dbt_studio._create_table_as(staged, dbt_studio._stitch_output_sql(result_sql)) }}
        {%- endcall -%}
        {%- do dbt_studio._replace_table(staged, target) -%}
    {%- endif -%}
    {#- the rules after the output: a run that fails before here is still a rebuild next time -#}
    {%- if reads.get('rules') and not (incremental and dbt_studio._stitch_recorded_rules() == reads.rules) -%}
        {%- do run_query(dbt_studio._create_table_as(dbt_studio._sibling(target, '__screening_rules'),
                         dbt_studio._stitch_rules_sql(reads.rules))) -%}
    {%- endif -%}
    {#- the cap history after the output: a run that fails before here counts its links again next time -#}
    {%- if keeps_history and history is not none -%}
        {%- do run_query(dbt_studio._insert_into(cap_links, dbt_studio._stitch_cap_links_sql(work.obs, history))) -%}
    {%- elif keeps_history -%}
        {%- do run_query(dbt_studio._create_table_as(cap_links, dbt_studio._stitch_cap_links_sql(work.obs))) -%}
    {%- elif load_cached_relation(cap_links) is not none -%}
        {%- do adapter.drop_relation(cap_links) -%}
    {%- endif -%}
    {#- watermarks last: a run that fails before here reads the same rows again -#}
    {%- if reads.read_keys -%}
        {%- if incremental and load_cached_relation(watermarks) is not none -%}
            {%- do run_query(dbt_studio._stitch_watermarks_merge_sql(watermarks, work.obs, reads.read_keys)) -%}
        {%- else -%}
            {%- set watermarks_sql = dbt_studio._stitch_watermarks_sql(work.obs, reads.read_keys) -%}
            {%- do run_query(dbt_studio._create_table_as(watermarks, watermarks_sql)) -%}
        {%- endif -%}
    {%- endif -%}
    {%- do dbt_studio.stitch_session_end(this.name, capped_memory) -%}
    {%- do dbt_studio._drop_work_tables(work.values() | list) -%}

    {{ run_hooks(post_hooks) }}
    {%- do adapter.commit() -%}
    {{ return({'relations': [target]}) }}
{% endmaterialization %}
