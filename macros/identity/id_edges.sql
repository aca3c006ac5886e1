{#-
    dbt_studio.id_edges(sources=[...], id_types={...})

    The SQL of an `id_stitcher` model: every identifier seen in every source row, screened, and paired with
    the other identifiers of the same row. One row per (source row, identifier) with `other_type` null, plus
    one row per linked pair. Screening happens here, per identifier, so `target/compiled` shows exactly
    which values are dropped and why; the materialization applies edge caps and connected components.

    sources:  [{relation, ids: [col, ...] | {id_type: column or SQL}, timestamp?, name?, trust?: [id_type]}]
              `trust` lists the id types of this source allowed to link; a pair is kept when either side is
              trusted (default: every id type of the source is trusted).
    id_types: {id_type: {normalize: 'lower(trim({{ value }}))', blocklist: [...], include: [...],
                         exclude: [...], include_regex: [...], exclude_regex: [...], max_edges: {other: n}}}
-#}
{% macro id_edges(sources, id_types={}) %}
    {{ return(adapter.dispatch('id_edges', 'dbt_studio')(sources, id_types)) }}
{% endmacro %}

{% macro default__id_edges(sources, id_types={}) %}
    {%- set specs = dbt_studio._id_source_specs(sources, id_types) -%}
    {%- set string = dbt.type_string() -%}
    {%- set reads = dbt_studio._id_source_reads(specs, id_types) -%}
{{ dbt_studio._id_reads_marker(reads) }}
with
{%- for spec in specs %}
{{ spec.cte }} as (
    select
        {%- for id in spec.ids %}
        cast({{ id.expr }} as {{ string }}) as {{ id.type }}__raw,
        {{ dbt_studio._normalized_id(id.type, 'cast(' ~ id.expr ~ ' as ' ~ string ~ ')', id_types) }}
            as {{ id.type }}__value,
        {%- endfor %}
        {{ spec.timestamp }} as seen_at,
        {{ spec.loaded_at }} as loaded_at
    from {{ spec.relation }}
    {%- if spec.name in reads.since %}
    where {{ spec.loaded_at }} > cast('{{ reads.since[spec.name] }}' as {{ dbt.type_timestamp() }})
       or {{ spec.loaded_at }} is null
    {%- endif %}
),

{{ spec.cte }}__screened as {{ dbt_studio._materialized_cte() }}(
    select
        *,
        {%- for id in spec.ids %}
        {{ dbt_studio._id_reject_reason(id.type, id.type ~ '__value', id_types) }}
            as {{ id.type }}__reject_reason{{ "," if not loop.last }}
        {%- endfor %}
    from {{ spec.cte }}
){{ "," if not loop.last }}
{%- endfor %}

{%- for spec in specs %}
{%- set outer = loop %}
{%- for id in spec.ids %}
{{ "union all" if not (outer.first and loop.first) }}
select
    '{{ spec.name }}' as source_name,
    '{{ id.type }}' as id_type,
    {{ id.type }}__raw as raw_value,
    {{ id.type }}__value as id_value,
    {{ id.type }}__reject_reason as reject_reason,
    cast(null as {{ string }}) as other_type,
    cast(null as {{ string }}) as other_value,
    seen_at,
    loaded_at,
    cast(null as integer) as max_edges,
    cast(null as integer) as max_edges_reverse
from {{ spec.cte }}__screened
where {{ id.type }}__raw is not null
{%- endfor %}
{%- for pair in spec.pairs %}
union all
select
    '{{ spec.name }}' as source_name,
    '{{ pair.a }}' as id_type,
    {{ pair.a }}__raw as raw_value,
    {{ pair.a }}__value as id_value,
    cast(null as {{ string }}) as reject_reason,
    '{{ pair.b }}' as other_type,
    {{ pair.b }}__value as other_value,
    seen_at,
    loaded_at,
    {{ pair.cap if pair.cap is not none else 'cast(null as integer)' }} as max_edges,
    {{ pair.cap_reverse if pair.cap_reverse is not none else 'cast(null as integer)' }} as max_edges_reverse
from {{ spec.cte }}__screened
where {{ pair.a }}__reject_reason is null and {{ pair.a }}__value is not null
  and {{ pair.b }}__reject_reason is null and {{ pair.b }}__value is not null
{%- endfor %}
{%- endfor %}
{% endmacro %}


{#- Sources as plain dicts: name, relation, cte name, ids [{type, expr}], timestamp SQL, pairs to link. -#}
{% macro _id_source_specs(sources, id_types) %}
    {%- if sources is not sequence or sources is string or sources | length == 0 -%}
        {{ exceptions.raise_compiler_error("dbt_studio.id_edges in model '" ~ this.name
                                           ~ "': `sources` must be a non-empty list of {relation, ids}") }}
    {%- endif -%}
    {%- set keys = dbt_studio._identity_keys() -%}
    {%- if id_types is not mapping -%}
        {{ exceptions.raise_compiler_error("dbt_studio.id_edges in model '" ~ this.name
                                           ~ "': `id_types` must be a mapping {id_type: {normalize, ...}}") }}
    {%- endif -%}
    {%- for id_type, spec in id_types.items() -%}
        {%- set where = "dbt_studio.id_edges in model '" ~ this.name ~ "', id_types." ~ id_type -%}
        {%- if spec is not mapping -%}
            {{ exceptions.raise_compiler_error(where ~ ": must be a mapping {normalize, blocklist, ...}") }}
        {%- endif -%}
        {%- do dbt_studio._check_keys(where, spec, keys['id_type']['keys'], what=keys['id_type']['title']) -%}
    {%- endfor -%}
    {%- set specs = [] -%}
    {%- for source in sources -%}
        {%- set where = "dbt_studio.id_edges in model '" ~ this.name ~ "', source " ~ loop.index -%}
        {%- if source is not mapping or 'relation' not in source or 'ids' not in source -%}
            {{ exceptions.raise_compiler_error(where ~ ": each source needs `relation` and `ids`") }}
        {%- endif -%}
        {%- do dbt_studio._check_keys(where, source, keys['id_source']['keys'], what=keys['id_source']['title']) -%}
        {%- set ids = [] -%}
        {%- if source.ids is mapping -%}
            {%- for id_type, expr in source.ids.items() -%}
                {%- do ids.append({'type': id_type, 'expr': expr}) -%}
            {%- endfor -%}
        {%- else -%}
            {#- one column as a string is a list of one (as entity_features takes it), not a list of its letters -#}
            {%- for column in ([source.ids] if source.ids is string else source.ids) -%}
                {%- set expr = adapter.quote(column) if column | lower != column else column -%}
                {%- do ids.append({'type': column, 'expr': expr}) -%}
            {%- endfor -%}
        {%- endif -%}
        {%- if ids | length == 0 -%}
            {{ exceptions.raise_compiler_error(where ~ ": `ids` is empty") }}
        {%- endif -%}
        {%- for id in ids -%}
            {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', id.type) -%}
                {{ exceptions.raise_compiler_error(where ~ ": id type '" ~ id.type
                                                   ~ "' must be a plain name (letters, digits, _)") }}
            {%- endif -%}
        {%- endfor -%}
        {%- set types = ids | map(attribute='type') | list -%}
        {%- set trust = source.get('trust', types) -%}
        {%- for t in trust if t not in types -%}
            {{ exceptions.raise_compiler_error(where ~ ": `trust` names id type '" ~ t
                                               ~ "', which this source does not have (" ~ types | join(', ') ~ ")") }}
        {%- endfor -%}
        {%- set pairs = [] -%}
        {%- for i in range(types | length) -%}
            {%- for j in range(i + 1, types | length) -%}
                {%- set a, b = types[i], types[j] -%}
                {%- if a in trust or b in trust -%}
                    {%- do pairs.append({
                        'a': a, 'b': b,
                        'cap': (id_types.get(a, {}).get('max_edges', {})).get(b),
                        'cap_reverse': (id_types.get(b, {}).get('max_edges', {})).get(a),
                    }) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- set relation = source.relation -%}
        {%- set fallback = relation.identifier if relation.identifier is defined else 'source_' ~ loop.index -%}
        {%- set name = source.get('name') or fallback -%}
        {%- set ts = source.get('timestamp') -%}
        {%- set loaded_at = source.get('loaded_at') -%}
        {%- do specs.append({
            'name': name,
            'cte': 'source_' ~ loop.index ~ '_' ~ modules.re.sub('[^A-Za-z0-9_]', '_', name | lower),
            'relation': relation,
            'ids': ids,
            'pairs': pairs,
            'timestamp': 'cast(' ~ (ts if ts else 'null') ~ ' as ' ~ dbt.type_timestamp() ~ ')',
            'loaded_at': 'cast(' ~ (loaded_at if loaded_at else 'null') ~ ' as ' ~ dbt.type_timestamp() ~ ')',
            'read_key': (relation | string) ~ ' loaded_at ' ~ loaded_at if loaded_at else none,
        }) -%}
    {%- endfor -%}
    {{ return(specs) }}
{% endmacro %}


{#- How this run reads each source. A source with `loaded_at` is read from its watermark on incremental runs: only
    rows loaded after the newest row the last run read (and rows whose loaded_at is null). The watermark is kept
    in `<model>__watermarks` with the source's relation and loaded_at expression (`read_key`): when either changed,
    the source is read in full. Returns {sources: [name], read_keys: {name: read_key}, since: {name: watermark},
    caps: whether any linked pair is under a `max_edges` cap, rules: the digest of the screening rules}. -#}
{% macro _id_source_reads(specs, id_types) %}
    {%- set keys = {} -%}
    {%- for spec in specs if spec.read_key is not none -%}
        {%- do keys.update({spec.name: spec.read_key}) -%}
    {%- endfor -%}
    {%- set rules = dbt_studio._id_rules_digest(specs, id_types) -%}
    {%- set since = {} -%}
    {%- if keys and execute and dbt_studio._stitch_is_incremental(rules) -%}
        {%- set watermarks = dbt_studio._sibling(this, '__watermarks') -%}
        {%- if load_cached_relation(watermarks) is not none -%}
            {%- set found = run_query('select source_name, read_key, loaded_at from ' ~ watermarks
                                      ~ ' where loaded_at is not null') -%}
            {%- for row in found.rows if keys.get(row[0]) == row[1] -%}
                {%- do since.update({row[0]: row[2].strftime('%Y-%m-%d %H:%M:%S.%f')}) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {%- set caps = [] -%}
    {%- for spec in specs -%}
        {%- for pair in spec.pairs if pair.cap is not none or pair.cap_reverse is not none -%}
            {%- do caps.append(true) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return({'sources': specs | map(attribute='name') | list, 'read_keys': keys, 'since': since,
               'caps': caps | length > 0, 'rules': rules}) }}
{% endmacro %}

{#- A digest of everything that decides which identifiers a row yields and which pairs it links: each source's
    relation, id expressions, timestamp and linked pairs with their caps, and each id type's screening as the SQL
    it compiles to (the package's default blocklist and normalisation included). A graph built under other rules
    is rebuilt from all rows (the materialization). How a source is read (`loaded_at`) is not part of it: the
    watermarks follow that. -#}
{% macro _id_rules_digest(specs, id_types) %}
    {%- set parts = [] -%}
    {%- for spec in specs -%}
        {%- set ids = [] -%}
        {%- for id in spec.ids -%}
            {%- do ids.append([id.type, dbt_studio._normalized_id(id.type, id.expr, id_types),
                               dbt_studio._id_reject_reason(id.type, id.type ~ '__value', id_types)]) -%}
        {%- endfor -%}
        {%- set pairs = [] -%}
        {%- for pair in spec.pairs -%}
            {%- do pairs.append([pair.a, pair.b, pair.cap, pair.cap_reverse]) -%}
        {%- endfor -%}
        {%- do parts.append([spec.name, spec.relation | string, spec.timestamp, ids, pairs]) -%}
    {%- endfor -%}
    {{ return(local_md5(tojson(parts))) }}
{% endmacro %}

{#- The reads as a comment the materialization reads back (and users see in target/compiled). Every '*' is written
    as JSON's '\u002a', so no value can open or close a comment. -#}
{% macro _id_reads_marker(reads) -%}
/* dbt_studio.id_edges reads: {{ reads | tojson | replace('*', '\\u002a') }} */
{%- endmacro %}

{#- Whether an id_stitcher run is incremental: its output exists as a table, no full refresh is asked for, and it
    was built under the same screening rules (`rules`, the digest id_edges computes; a graph whose rules were never
    recorded is taken as built under them). The materialization and id_edges decide with this same macro, so a full
    build never runs on a partial read. -#}
{% macro _stitch_is_incremental(rules=none) %}
    {%- set existing = load_cached_relation(this) -%}
    {%- if existing is none or not existing.is_table or should_full_refresh() -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(rules is none or dbt_studio._stitch_recorded_rules() in (none, rules)) }}
{% endmacro %}

{#- The digest of the screening rules the graph was built under (`<model>__screening_rules`), or none when none was
    recorded (a graph built before they were). Read once per invocation: id_edges and the materialization ask. -#}
{% macro _stitch_recorded_rules() %}
    {%- set cache = dbt_studio._invocation_cache('stitch_rules') -%}
    {%- set key = this | string -%}
    {%- if key not in cache -%}
        {%- set table = dbt_studio._sibling(this, '__screening_rules') -%}
        {%- set rows = run_query('select rules from ' ~ table).rows if load_cached_relation(table) is not none
                       else [] -%}
        {%- do cache.update({key: rows[0][0] if rows | length > 0 else none}) -%}
    {%- endif -%}
    {{ return(cache[key]) }}
{% endmacro %}
