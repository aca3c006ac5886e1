{#-
    The Customer Studio schema, read from every model's `config.meta.dbt_studio` at compile time.

    A model declares its role and its relationships (see README, "Schema and audiences"):

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

{% macro _schema_error(model, msg) %}
    {{ exceptions.raise_compiler_error("dbt_studio: model '" ~ model ~ "': " ~ msg) }}
{% endmacro %}

{#- Fail naming the model when `columns` are not among the documented columns of `model` (only when it documents any). -#}
{% macro _check_columns(schema, model, columns, what, owner=none) %}
    {%- set known = schema.models[model].columns -%}
    {%- if known | length == 0 -%}{{ return(none) }}{%- endif -%}
    {%- for c in columns -%}
        {%- if (c | lower) not in known -%}
            {{ dbt_studio._schema_error(owner or model, what ~ ": unknown column '" ~ c ~ "'" ~ (" of '" ~ model ~ "'" if owner else "") ~ " (columns: " ~ (known | join(', ')) ~ ")") }}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}

{% macro _flip_cardinality(card) %}
    {{ return({'1:1': '1:1', '1:many': 'many:1', 'many:1': '1:many'}[card]) }}
{% endmacro %}

{#-
    The schema graph: {'models': {name: {name, model_type, primary_key, labels, timestamp, columns, relation,
    audience, relationships: {rel name: {name, to, cardinality, pairs, through, merge_columns, declared}}}}}.
    `nodes` is what `_schema_nodes()` returns (or the same shape built by the CLI from manifest.json).
-#}
{% macro _schema(nodes=none) %}
    {%- set nodes = dbt_studio._schema_nodes() if nodes is none else nodes -%}
    {%- set models = {} -%}
    {%- set schema = {'models': models} -%}
    {%- for name, node in nodes.items() -%}
        {%- set meta = node.meta or {} -%}
        {%- if meta.get('model_type') and meta.get('model_type') not in ('parent', 'related', 'event') -%}
            {{ dbt_studio._schema_error(name, "model_type must be parent, related or event, not '" ~ meta.get('model_type') ~ "'") }}
        {%- endif -%}
        {%- do models.update({name: {
            'name': name,
            'model_type': meta.get('model_type'),
            'primary_key': dbt_studio._as_list(meta.get('primary_key')),
            'labels': dbt_studio._as_list(meta.get('labels').values() | list if meta.get('labels') is mapping else meta.get('labels')),
            'timestamp': meta.get('timestamp'),
            'columns': node.columns or [],
            'column_meta': node.get('column_meta') or {},
            'relation': node.relation,
            'unique_id': node.get('unique_id'),
            'audience': node.get('audience'),
            'relationships': {},
        }}) -%}
    {%- endfor -%}
    {%- for name, model in models.items() -%}
        {%- do dbt_studio._check_columns(schema, name, model.primary_key, 'primary_key') -%}
        {%- do dbt_studio._check_columns(schema, name, model.labels, 'labels') -%}
        {%- if model.model_type == 'event' and not model.timestamp -%}
            {{ dbt_studio._schema_error(name, "an event model needs a timestamp column") }}
        {%- endif -%}
        {%- if model.timestamp -%}
            {%- do dbt_studio._check_columns(schema, name, [model.timestamp], 'timestamp') -%}
        {%- endif -%}
    {%- endfor -%}
    {#- direct relationships first, then their reverse sides, then through relationships -#}
    {%- for name, node in nodes.items() -%}
        {%- for rel in (node.meta or {}).get('relationships') or [] if not rel.get('through') -%}
            {%- do dbt_studio._add_direct(schema, name, rel) -%}
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

{% macro _add_direct(schema, name, rel) %}
    {%- set models = schema.models -%}
    {%- set to = rel.get('to') -%}
    {%- set label = "relationship '" ~ (rel.get('name') or to) ~ "'" -%}
    {%- if not to or to not in models -%}
        {{ dbt_studio._schema_error(name, label ~ ": unknown model '" ~ to ~ "'") }}
    {%- endif -%}
    {%- set card = rel.get('cardinality') | string -%}
    {%- if card not in ('1:1', '1:many', 'many:1') -%}
        {{ dbt_studio._schema_error(name, label ~ ": cardinality must be 1:1, 1:many or many:1, not '" ~ rel.get('cardinality') ~ "'") }}
    {%- endif -%}
    {%- set join = rel.get('join') -%}
    {%- if join is not mapping or join | length == 0 -%}
        {{ dbt_studio._schema_error(name, label ~ ": join must map this model's columns to '" ~ to ~ "' columns, e.g. {user_id: user_id}") }}
    {%- endif -%}
    {%- set pairs = [] -%}
    {%- for a, b in join.items() -%}{%- do pairs.append([a, b]) -%}{%- endfor -%}
    {%- do dbt_studio._check_columns(schema, name, pairs | map('first') | list, label) -%}
    {%- do dbt_studio._check_columns(schema, to, pairs | map('last') | list, label, name) -%}
    {%- set merge = rel.get('merge_columns') -%}
    {%- if merge -%}
        {%- if card == '1:many' -%}
            {{ dbt_studio._schema_error(name, label ~ ": merge_columns: '" ~ to ~ "' is on the many side of 1:many; columns merge only from the one side onto the many side (declare the merge on '" ~ to ~ "')") }}
        {%- endif -%}
        {%- if merge is not sameas true -%}
            {%- do dbt_studio._check_columns(schema, to, dbt_studio._as_list(merge), label ~ ": merge_columns", name) -%}
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
        {{ dbt_studio._schema_error(name, label ~ ": unknown model '" ~ to ~ "'") }}
    {%- endif -%}
    {%- if via not in models -%}
        {{ dbt_studio._schema_error(name, label ~ ": unknown model '" ~ via ~ "'") }}
    {%- endif -%}
    {%- set first = dbt_studio._direct_to(schema, name, via) -%}
    {%- set second = dbt_studio._direct_to(schema, via, to) -%}
    {%- if first is none or second is none -%}
        {{ dbt_studio._schema_error(name, label ~ ": needs direct relationships " ~ name ~ " -> " ~ via ~ " and " ~ via ~ " -> " ~ to) }}
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
    names (one hop each). Each hop is {from, to, pairs}.
-#}
{% macro _hops(schema, model, target, context) %}
    {%- set hops = [] -%}
    {%- set current = [model] -%}
    {%- for step in dbt_studio._as_list(target) -%}
        {%- set here = current | last -%}
        {%- if step not in schema.models -%}
            {{ exceptions.raise_compiler_error("dbt_studio: audience '" ~ context ~ "': " ~ "unknown model '" ~ step ~ "'") }}
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
                {%- for rel in schema.models[here].relationships.values() -%}{%- do names.append(rel.to) -%}{%- endfor -%}
                {{ exceptions.raise_compiler_error("dbt_studio: audience '" ~ context ~ "': " ~ "model '" ~ here ~ "' has no relationship to '" ~ step ~ "' (it relates to: " ~ (names | unique | sort | join(', ') or 'nothing') ~ ")") }}
            {%- endif -%}
            {%- set via = through[0].through -%}
            {%- do hops.append({'from': here, 'to': via, 'pairs': dbt_studio._direct_to(schema, here, via).pairs}) -%}
            {%- do hops.append({'from': via, 'to': step, 'pairs': dbt_studio._direct_to(schema, via, step).pairs}) -%}
        {%- endif -%}
        {%- do current.append(step) -%}
    {%- endfor -%}
    {{ return(hops) }}
{% endmacro %}
