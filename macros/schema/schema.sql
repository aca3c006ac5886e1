{#-
    The Customer Studio schema, read from every model's `config.meta.dbt_studio` at compile time.

    A model declares its role and its relationships (see docs/audiences.md):

        model_type: parent | related | event
        primary_key: user_id            (parents)
        labels: [name, email]           (parents: what previews show)
        timestamp: ts                   (events)
        relationships:
          - name: purchases             (optional; default: the other model's name)
            to: stg_purchases
            cardinality: 1:many         (1:1 | 1:many | many:1, seen from this model)
            join: {user_id: user_id}    (this model's column: the other model's column; all pairs must match)
            merge_columns: true         (or a list: the other model's columns merged onto this one)
          - name: subscriptions
            to: stg_subscriptions
            through: stg_memberships    (a through relationship: this model -> stg_memberships -> stg_subscriptions)

    Relationships are bidirectional: a relationship declared on A to B also gives B one to A (cardinality
    flipped, pairs swapped, named after A) unless B declares its own.
-#}

{#- name -> {meta, columns, column_meta, relation, unique_id, audience} of every model in the graph (at execution). -#}
{% macro _schema_nodes() %}
    {%- set out = {} -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
            {%- set meta = node.config.meta or {} -%}
            {%- set column_meta = {} -%}
            {%- for name, column in (node.columns or {}).items() -%}
                {%- set cmeta = (column.get('config') or {}).get('meta') or column.get('meta') or {} -%}
                {%- do column_meta.update({name | lower: cmeta.get('dbt_studio') or {}}) -%}
            {%- endfor -%}
            {%- do out.update({node.name: {
                'meta': meta.get('dbt_studio') or {},
                'audience': meta.get('dbt_studio_audience'),
                'columns': column_meta.keys() | list,
                'column_meta': column_meta,
                'relation': node.relation_name,
                'unique_id': node.unique_id,
                'database': node.database,
                'schema_name': node.schema,
                'identifier': node.alias or node.name,
                'file': (node.patch_path or '').split('://') | last or node.original_file_path,
            }}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(out) }}
{% endmacro %}

{#- A column or a list of columns as a list. -#}
{% macro _as_list(value) %}
    {%- if value is none -%}{{ return([]) }}{%- endif -%}
    {%- if value is string -%}{{ return([value]) }}{%- endif -%}
    {{ return(value | list) }}
{% endmacro %}

{#- A schema rule broken by `model`: a compile error, or with `schema.problems` a list (what `dbt-studio validate`
    passes), one more problem; the caller then skips what the broken declaration would have added. -#}
{% macro _schema_error(model, msg, schema=none) %}
    {%- if schema is not none and schema.problems is not none -%}
        {%- do schema.problems.append({'model': model, 'message': msg}) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model ~ "': " ~ msg) }}
{% endmacro %}

{#- The columns of `model` (lower-case): its relation's when it is built (the warehouse is the truth: YAML docs
    lag the SQL), else the documented ones; none to check against (empty) when it is built but not read here (see
    _relation_column_types). Asked once per schema object, or never when the caller passed them in the node as
    `actual` (the studio reads them once per build: see studio_model_columns). -#}
{% macro _model_columns(schema, model) %}
    {%- set m = schema.models[model] -%}
    {%- if m.get('actual') is none -%}
        {%- set pairs = dbt_studio._relation_column_types(m) -%}
        {%- do m.update({'actual': (pairs or []) | map('first') | list, 'unread': pairs is none}) -%}
    {%- endif -%}
    {{ return(m.actual if m.actual or m.get('unread') else m.columns) }}
{% endmacro %}

{#- [[lower-case name, type], ...] of a schema model's relation: empty when it is not built, none when it is built
    but not read here. Outside a node (the runner's previews; validate passes no identifier), always read.

    Inside a node's compile (an audience, a merged model, a data test), only the relations of the models the node
    depends on are read: dbt built them before this node and builds none of them again in the invocation, so their
    columns are final, and each is asked once per invocation for all its nodes (`_invocation_cache`). Every
    audience compile builds the whole schema; asking each time cost a describe per schema model per audience
    (1,032 for the 124 audiences of the audiences test over 8 models: a round trip each on Snowflake). A built model
    the node does not depend on may not be rebuilt yet in this run (a column added in the same change would look
    missing), or be rebuilt by another thread meanwhile, and its docs may lag its SQL: its columns are not checked
    here (none), but by the nodes that read it and by validate. One not built yet is checked against its docs. -#}
{% macro _relation_column_types(m) %}
    {%- if not (execute and m.get('identifier')) -%}{{ return([]) }}{%- endif -%}
    {%- set in_node = model is mapping and model.get('resource_type') not in (none, 'macro') -%}
    {%- set final = in_node and m.unique_id in ((model.get('depends_on') or {}).get('nodes') or []) -%}
    {%- if final -%}
        {%- set cache = dbt_studio._invocation_cache('relation_columns') -%}
        {%- if m.unique_id in cache -%}{{ return(cache[m.unique_id]) }}{%- endif -%}
    {%- endif -%}
    {%- set relation = adapter.get_relation(database=m.get('database'), schema=m.get('schema_name'),
                                            identifier=m.identifier) -%}
    {%- if in_node and not final and relation is not none -%}{{ return(none) }}{%- endif -%}
    {%- set pairs = [] -%}
    {%- for c in (adapter.get_columns_in_relation(relation) if relation is not none else []) -%}
        {%- do pairs.append([c.name | lower, c.dtype]) -%}
    {%- endfor -%}
    {%- if final -%}{%- do cache.update({m.unique_id: pairs}) -%}{%- endif -%}
    {{ return(pairs) }}
{% endmacro %}

{#- The number-typed columns of `model`'s relation, {lower-case name: type}: from the types the caller passed
    (validate reads them with the columns), else from its relation (see _relation_column_types; empty when it is
    not built or not read here), and only when a condition compares one of its columns with a word. -#}
{% macro _number_columns(schema, model) %}
    {%- set m = schema.models[model] -%}
    {%- if m.get('number_columns') is none -%}
        {%- set types = m.get('column_types') -%}
        {%- if types is not mapping -%}
            {%- set types = {} -%}
            {%- for name, kind in dbt_studio._relation_column_types(m) or [] -%}
                {%- do types.update({name: kind}) -%}
            {%- endfor -%}
        {%- endif -%}
        {%- set found = {} -%}
        {%- for name, kind in types.items() if dbt_studio._is_number_type(kind) -%}
            {%- do found.update({name | lower: kind}) -%}
        {%- endfor -%}
        {%- do m.update({'number_columns': found}) -%}
    {%- endif -%}
    {{ return(m.number_columns) }}
{% endmacro %}

{#- Number types by their name without size, as DuckDB and Snowflake spell them. -#}
{% macro _number_types() %}
    {{ return(['decimal', 'numeric', 'number', 'integer', 'int', 'bigint', 'smallint', 'tinyint', 'hugeint',
               'ubigint', 'uinteger', 'usmallint', 'utinyint', 'uhugeint', 'double', 'float', 'real',
               'double precision', 'float4', 'float8', 'int2', 'int4', 'int8', 'byteint']) }}
{% endmacro %}

{#- Whether a column type (`DECIMAL(38,2)`, `NUMBER`, `VARCHAR`) is a number type: dbt's `Column.is_number()`
    misses DECIMAL(38,2) and NUMBER. -#}
{% macro _is_number_type(kind) %}
    {{ return((kind | string).split('(')[0] | trim | lower in dbt_studio._number_types()) }}
{% endmacro %}

{#- The same test as SQL over a type name column (kept SQL that reads types from the information schema). -#}
{% macro _is_number_type_sql(kind) -%}
lower(trim(split_part({{ kind }}, '(', 1))) in (
    {%- for name in dbt_studio._number_types() -%}
    {{ dbt_studio.string_literal(name) }}{{ ', ' if not loop.last }}
    {%- endfor -%})
{%- endmacro %}

{#- "unknown model 'ordrs' (did you mean 'orders'?)": a name the project's enabled models do not have; or, when the
    caller knows it is a disabled one (`disabled`: name -> "model 'x' is disabled (enabled: false, <file>)", which
    `dbt-studio validate` and previews pass from manifest.json; dbt's graph has no disabled nodes), that phrase and
    `remedy`. -#}
{% macro _unknown_model(word, models, disabled=none, remedy='') %}
    {%- if word and disabled and (word | string) in disabled -%}
        {{ return(disabled[word | string] ~ ('; ' ~ remedy if remedy else '')) }}
    {%- endif -%}
    {%- set close = dbt_studio._closest(word | string, models.keys() | list) if word else none -%}
    {{ return("unknown model '" ~ word ~ "'" ~ (" (did you mean '" ~ close ~ "'?)" if close else "")) }}
{% endmacro %}

{#- How an unknown-column message says which columns it used. -#}
{% macro _columns_phrase(schema, model) %}
    {%- set known = dbt_studio._model_columns(schema, model) -%}
    {%- set m = schema.models[model] -%}
    {%- if m.get('actual') or m.get('columns_source') == 'warehouse' -%}
        {%- set source = 'columns of the relation' -%}
    {%- elif m.get('columns_source') == 'unread' -%}
        {%- set source = 'documented columns; the warehouse could not be read, see the note' -%}
    {%- else -%}
        {%- set source = 'documented columns; the relation is not built yet' -%}
    {%- endif -%}
    {{ return('(' ~ source ~ ': ' ~ (known | join(', ')) ~ ')') }}
{% endmacro %}

{#- Fail naming the model when `columns` are not among the columns of `model` (see _model_columns; no check when
    it is not built and documents none). Nothing to check asks the warehouse nothing: every audience compile
    builds the whole schema, and most models (audiences among them) declare no column. -#}
{% macro _check_columns(schema, model, columns, what, owner=none) %}
    {%- if columns | length == 0 -%}{{ return(none) }}{%- endif -%}
    {%- set known = dbt_studio._model_columns(schema, model) -%}
    {%- if known | length == 0 -%}{{ return(none) }}{%- endif -%}
    {%- for c in columns -%}
        {%- if (c | lower) not in known -%}
            {%- set of_model = " of '" ~ model ~ "'" if owner else "" -%}
            {%- do dbt_studio._schema_error(owner or model, what ~ ": unknown column '" ~ c ~ "'" ~ of_model
                                            ~ " " ~ dbt_studio._columns_phrase(schema, model), schema) -%}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}

{#- Why `column` cannot be a column of `model` (see _model_columns; none when it can, or when the model is not
    built and documents no columns). -#}
{% macro _column_problem(schema, model, column) %}
    {%- if column is not string or not column -%}
        {{ return("a condition on model '" ~ model ~ "' needs a column name") }}
    {%- endif -%}
    {%- set known = dbt_studio._model_columns(schema, model) -%}
    {%- if known | length > 0 and (column | lower) not in known -%}
        {{ return("unknown column '" ~ column ~ "' of model '" ~ model ~ "' "
                  ~ dbt_studio._columns_phrase(schema, model)) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}

{% macro _flip_cardinality(card) %}
    {{ return({'1:1': '1:1', '1:many': 'many:1', 'many:1': '1:many'}[card]) }}
{% endmacro %}

{#-
    The schema graph: {'models': {name: {name, model_type, primary_key, labels, timestamp, columns, relation,
    audience, relationships: {rel name: {name, to, cardinality, pairs, through, merge_columns, declared}}}}}.
    `nodes` is what `_schema_nodes()` returns (or the same shape built by the CLI from manifest.json).

    This macro owns the schema's rules across models (related models exist, join and merge columns exist, merges
    go from the one side, through relationships have their two hops, events have a timestamp): compile time
    raises the first broken rule, and `dbt-studio validate` runs this same macro with `problems=[]` to list every
    one (sync_runner/audiences/schema.py), so both say the same. The keys and types of a meta block are the
    declared schema's (sync_runner/project/declared.py, which validate checks first); the guards below that need
    them to build the graph (model_type, cardinality, join) word their message as it does.
-#}
{% macro _schema(nodes=none, problems=none, disabled=none) %}
    {%- set nodes = dbt_studio._schema_nodes() if nodes is none else nodes -%}
    {%- set models = {} -%}
    {%- set schema = {'models': models, 'problems': problems, 'disabled': disabled or {}} -%}
    {%- for name, node in nodes.items() -%}
        {%- set meta = node.meta or {} -%}
        {%- if meta.get('model_type') and meta.get('model_type') not in ('parent', 'related', 'event') -%}
            {%- do dbt_studio._schema_error(name, "meta.dbt_studio.model_type: must be one of parent, related, "
                                            ~ "event, not " ~ dbt_studio._shown(meta.get('model_type')), schema) -%}
        {%- endif -%}
        {%- do models.update({name: {
            'name': name,
            'model_type': meta.get('model_type'),
            'primary_key': dbt_studio._as_list(meta.get('primary_key')),
            'labels': dbt_studio._as_list(meta.get('labels').values() | list if meta.get('labels') is mapping
                                          else meta.get('labels')),
            'timestamp': meta.get('timestamp'),
            'columns': node.columns or [],
            'column_meta': node.get('column_meta') or {},
            'relation': node.relation,
            'unique_id': node.get('unique_id'),
            'database': node.get('database'),
            'schema_name': node.get('schema_name'),
            'identifier': node.get('identifier'),
            'file': node.get('file'),
            'columns_source': node.get('columns_source'),
            'actual': node.get('actual'),
            'column_types': node.get('column_types'),
            'audience': node.get('audience'),
            'relationships': {},
        }}) -%}
    {%- endfor -%}
    {%- for name, model in models.items() -%}
        {%- do dbt_studio._check_columns(schema, name, model.primary_key, 'primary_key') -%}
        {%- do dbt_studio._check_columns(schema, name, model.labels, 'labels') -%}
        {%- if model.model_type == 'event' and not model.timestamp -%}
            {%- do dbt_studio._schema_error(name, "meta.dbt_studio.timestamp: an event model needs a timestamp "
                                            ~ "column", schema) -%}
        {%- endif -%}
        {%- if model.timestamp -%}
            {%- do dbt_studio._check_columns(schema, name, [model.timestamp], 'timestamp') -%}
        {%- endif -%}
    {%- endfor -%}
    {#- direct relationships first, then their reverse sides, then through relationships -#}
    {%- for name, node in nodes.items() -%}
        {%- for rel in (node.meta or {}).get('relationships') or [] -%}
            {%- if not rel.get('through') -%}
                {%- do dbt_studio._add_direct(schema, name, rel, loop.index0) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for name, model in models.items() -%}
        {%- for rel in model.relationships.values() | list if rel.declared -%}
            {%- set other = models[rel.to] -%}
            {%- set taken = [] -%}
            {%- for r in other.relationships.values() if r.to == name and r.declared -%}
                {%- do taken.append(r) -%}
            {%- endfor -%}
            {%- if taken | length == 0 and name not in other.relationships -%}
                {%- set pairs = [] -%}
                {%- for p in rel.pairs -%}{%- do pairs.append([p[1], p[0]]) -%}{%- endfor -%}
                {%- do other.relationships.update({name: {
                    'name': name, 'to': name, 'cardinality': dbt_studio._flip_cardinality(rel.cardinality),
                    'pairs': pairs, 'through': none, 'merge_columns': none, 'declared': false}}) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for name, node in nodes.items() -%}
        {%- for rel in (node.meta or {}).get('relationships') or [] if rel.get('through') -%}
            {%- do dbt_studio._add_through(schema, name, rel) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(schema) }}
{% endmacro %}

{#- The value as Python's repr shows it in `dbt-studio validate`'s messages ('text', 61, ['a']). -#}
{% macro _shown(value) %}
    {{ return("'" ~ value ~ "'" if value is string else value | string) }}
{% endmacro %}

{% macro _add_direct(schema, name, rel, index=0) %}
    {%- set models = schema.models -%}
    {%- set to = rel.get('to') -%}
    {%- set label = "relationship '" ~ (rel.get('name') or to) ~ "'" -%}
    {%- set key = "meta.dbt_studio.relationships[" ~ index ~ "]" -%}
    {%- set card = rel.get('cardinality') -%}
    {%- for required in ('cardinality', 'join') if rel.get(required) is none -%}
        {{ return(dbt_studio._schema_error(name, key ~ "." ~ required ~ ": missing (a direct relationship needs "
                                           ~ "cardinality and join)", schema)) }}
    {%- endfor -%}
    {%- if card not in ('1:1', '1:many', 'many:1') -%}
        {%- set hint = '' -%}
        {%- if card is number and card is not sameas true and card is not sameas false and card >= 60 -%}
            {%- set ratio = (card // 60) ~ ':' ~ (card % 60) -%}
            {%- set hint = ' (YAML reads an unquoted ' ~ ratio ~ ' as the number ' ~ card ~ ': quote it, "' ~ ratio
                           ~ '")' -%}
        {%- endif -%}
        {{ return(dbt_studio._schema_error(name, key ~ ".cardinality: must be one of 1:1, 1:many, many:1, not "
                                           ~ dbt_studio._shown(card) ~ hint, schema)) }}
    {%- endif -%}
    {%- set join = rel.get('join') -%}
    {%- if join is not mapping or join | length == 0 -%}
        {{ return(dbt_studio._schema_error(name, key ~ ".join: must be a mapping {this model's column: the other "
                                           ~ "model's column}, not " ~ dbt_studio._shown(join), schema)) }}
    {%- endif -%}
    {%- if not to or to not in models -%}
        {{ return(dbt_studio._schema_error(name, label ~ ": " ~ dbt_studio._unknown_model(to, models, schema.disabled,
                                                                           'enable it or remove the relationship'),
                                           schema)) }}
    {%- endif -%}
    {%- set pairs = [] -%}
    {%- for a, b in join.items() -%}{%- do pairs.append([a, b]) -%}{%- endfor -%}
    {%- do dbt_studio._check_columns(schema, name, pairs | map('first') | list, label) -%}
    {%- do dbt_studio._check_columns(schema, to, pairs | map('last') | list, label, name) -%}
    {%- set merge = rel.get('merge_columns') -%}
    {%- if merge -%}
        {%- if card == '1:many' -%}
            {%- do dbt_studio._schema_error(name, label ~ ": merge_columns: '" ~ to ~ "' is on the many side of "
                                            ~ "1:many; columns merge only from the one side onto the many side "
                                            ~ "(declare the merge on '" ~ to ~ "')", schema) -%}
        {%- endif -%}
        {%- if merge is not sameas true -%}
            {%- set what = label ~ ": merge_columns" -%}
            {%- do dbt_studio._check_columns(schema, to, dbt_studio._as_list(merge), what, name) -%}
        {%- endif -%}
    {%- endif -%}
    {%- set rname = rel.get('name') or to -%}
    {%- do models[name].relationships.update({rname: {
        'name': rname, 'to': to, 'cardinality': card, 'pairs': pairs, 'through': none,
        'merge_columns': merge, 'declared': true}}) -%}
{% endmacro %}

{% macro _add_through(schema, name, rel) %}
    {%- set models = schema.models -%}
    {%- set to = rel.get('to') -%}
    {%- set via = rel.get('through') -%}
    {%- set label = "through relationship '" ~ (rel.get('name') or to) ~ "'" -%}
    {%- if not to or to not in models -%}
        {{ return(dbt_studio._schema_error(name, label ~ ": " ~ dbt_studio._unknown_model(to, models, schema.disabled,
                                                                           'enable it or remove the relationship'),
                                           schema)) }}
    {%- endif -%}
    {%- if via not in models -%}
        {{ return(dbt_studio._schema_error(name, label ~ ": " ~ dbt_studio._unknown_model(via, models,
                                                                           schema.disabled,
                                                                           'enable it or remove the relationship'),
                                           schema)) }}
    {%- endif -%}
    {%- set first = dbt_studio._direct_to(schema, name, via) -%}
    {%- set second = dbt_studio._direct_to(schema, via, to) -%}
    {%- if first is none or second is none -%}
        {{ return(dbt_studio._schema_error(name, label ~ ": needs direct relationships " ~ name ~ " -> " ~ via
                                           ~ " and " ~ via ~ " -> " ~ to, schema)) }}
    {%- endif -%}
    {%- set rname = rel.get('name') or to -%}
    {%- do models[name].relationships.update({rname: {
        'name': rname, 'to': to, 'cardinality': 'many:many', 'pairs': [], 'through': via,
        'merge_columns': none, 'declared': true}}) -%}
{% endmacro %}

{#- The direct relationship of `model` to `to` (declared before derived ones), or none. -#}
{% macro _direct_to(schema, model, to) %}
    {%- set found = [] -%}
    {%- for rel in schema.models[model].relationships.values() if rel.to == to and not rel.through -%}
        {%- do found.append(rel) -%}
    {%- endfor -%}
    {{ return((found | sort(attribute='declared', reverse=true) | first) if found else none) }}
{% endmacro %}

{#-
    The hops from `model` to `target`: a model name (a direct or a through relationship) or a list of model
    names (one hop each). Each hop is {from, to, pairs}. Returns {'hops': [...], 'error': none}, or the reason
    there is no such path as `error` (callers raise it or, in `dbt-studio validate`, list it).
-#}
{% macro _find_hops(schema, model, target) %}
    {%- set hops = [] -%}
    {%- set current = [model] -%}
    {%- for step in dbt_studio._as_list(target) -%}
        {%- set here = current | last -%}
        {%- if step not in schema.models -%}
            {{ return({'hops': hops, 'error': dbt_studio._unknown_model(step, {}, schema.get('disabled'),
                                                                        'enable it or remove this reference')}) }}
        {%- endif -%}
        {%- set direct = dbt_studio._direct_to(schema, here, step) -%}
        {%- if direct is not none -%}
            {%- do hops.append({'from': here, 'to': step, 'pairs': direct.pairs}) -%}
        {%- else -%}
            {%- set through = [] -%}
            {%- for rel in schema.models[here].relationships.values() if rel.to == step and rel.through -%}
                {%- do through.append(rel) -%}
            {%- endfor -%}
            {%- if through | length == 0 -%}
                {%- set names = [] -%}
                {%- for rel in schema.models[here].relationships.values() -%}
                    {%- do names.append(rel.to) -%}
                {%- endfor -%}
                {{ return({'hops': hops, 'error': "model '" ~ here ~ "' has no relationship to '" ~ step
                           ~ "' (it relates to: " ~ (names | unique | sort | join(', ') or 'nothing') ~ ")"}) }}
            {%- endif -%}
            {%- set via = through[0].through -%}
            {%- do hops.append({'from': here, 'to': via, 'pairs': dbt_studio._direct_to(schema, here, via).pairs}) -%}
            {%- do hops.append({'from': via, 'to': step, 'pairs': dbt_studio._direct_to(schema, via, step).pairs}) -%}
        {%- endif -%}
        {%- do current.append(step) -%}
    {%- endfor -%}
    {{ return({'hops': hops, 'error': none}) }}
{% endmacro %}

{#- The hops of `_find_hops`, or a compile error naming the audience (`context`). -#}
{% macro _hops(schema, model, target, context) %}
    {%- set found = dbt_studio._find_hops(schema, model, target) -%}
    {%- if found.error is not none -%}
        {{ exceptions.raise_compiler_error("dbt_studio: audience '" ~ context ~ "': " ~ found.error) }}
    {%- endif -%}
    {{ return(found.hops) }}
{% endmacro %}
