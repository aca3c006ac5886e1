{#-
    What an audience's arguments refer to: its parent, the models and relationships each condition and trait
    reaches, the columns they read, and the other audiences they name. Every reference is checked before any SQL
    is written, named by where it is (`where.and[1].having.column`), so that `dbt compile` raises the first broken
    one and `dbt-studio validate` lists them all in the same words: validate runs this macro on the arguments
    dbt recorded, with each built relation's columns (sync_runner/audiences/schema.py).

    `depends_on` is the unique_ids dbt recorded for the model (a model read but not named, such as the middle of a
    through relationship, must be named with `via`); none in a preview, which reads relations by name.
-#}
{% macro _check_audience_references(schema, name, spec, problems=none, depends_on=none) %}
    {%- set ctx = {'schema': schema, 'name': name, 'problems': problems, 'depends_on': depends_on} -%}
    {%- set parent = schema.models.get(spec.parent) -%}
    {%- if parent is none -%}
        {%- set disabled = (schema.get('disabled') or {}).get(spec.parent | string) -%}
        {%- set message = "parent " ~ disabled ~ "; enable it or choose another parent" if disabled
                          else "unknown parent model '" ~ spec.parent ~ "'" -%}
        {{ return(dbt_studio._reference_problem(ctx, 'parent', message)) }}
    {%- endif -%}
    {%- if parent.model_type != 'parent' or not parent.primary_key -%}
        {{ return(dbt_studio._reference_problem(ctx, 'parent', "model '" ~ spec.parent ~ "' is not a parent model "
                                                ~ "(meta.dbt_studio needs model_type: parent and a primary_key)")) }}
    {%- endif -%}
    {%- do dbt_studio._check_recorded(ctx, 'parent', [spec.parent]) -%}
    {%- if spec.where is mapping -%}
        {%- do dbt_studio._check_condition_references(spec.where, 'where', spec.parent, ctx) -%}
    {%- endif -%}
    {%- if spec.columns is iterable and spec.columns is not string -%}
        {%- for column in spec.columns -%}
            {%- do dbt_studio._check_column_reference(ctx, 'columns[' ~ loop.index0 ~ ']', spec.parent, column) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- for trait in spec.traits or [] if trait is mapping and trait.get('related') -%}
        {%- set at = 'traits[' ~ loop.index0 ~ ']' -%}
        {%- set target = dbt_studio._reached_model(ctx, at ~ '.related', spec.parent, trait.related) -%}
        {%- if target is not none -%}
            {%- if trait.get('where') is mapping -%}
                {%- do dbt_studio._check_condition_references(trait['where'], at ~ '.where', target, ctx) -%}
            {%- endif -%}
            {%- set fn = (trait.get('agg') or 'count') | lower -%}
            {%- if fn != 'count' or trait.get('column') -%}
                {%- do dbt_studio._check_column_reference(ctx, at ~ '.column', target, trait.get('column')) -%}
            {%- endif -%}
            {%- if trait.get('order_by') -%}
                {%- do dbt_studio._check_column_reference(ctx, at ~ '.order_by', target, trait.order_by) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}

{#- One condition and its children, about the rows of `model`. -#}
{% macro _check_condition_references(node, at, model, ctx) %}
    {%- for group in ('and', 'or') if node.get(group) is iterable and node.get(group) is not string -%}
        {%- for child in node[group] if child is mapping -%}
            {%- do dbt_studio._check_condition_references(child, at ~ '.' ~ group ~ '[' ~ loop.index0 ~ ']', model,
                                                          ctx) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if node.get('not') is mapping -%}
        {%- do dbt_studio._check_condition_references(node['not'], at ~ '.not', model, ctx) -%}
    {%- endif -%}
    {%- if 'column' in node and not ('has' in node or 'has not' in node) -%}
        {%- if dbt_studio._check_column_reference(ctx, at ~ '.column', model, node.column) -%}
            {%- do dbt_studio._check_value_type(ctx, at ~ '.value', model, node.column, node.get('op'),
                                                node.get('value')) -%}
        {%- endif -%}
    {%- endif -%}
    {%- for kind in ('has', 'has not', 'performed', 'did not perform') if kind in node -%}
        {%- set inner = dbt_studio._reached_model(ctx, at ~ '.' ~ kind, model, node[kind]) -%}
        {%- if inner is not none and kind in ('performed', 'did not perform')
              and not ctx.schema.models[inner].timestamp -%}
            {%- do dbt_studio._reference_problem(ctx, at ~ '.' ~ kind, "model '" ~ inner ~ "' is not an event model "
                                                 ~ "(no timestamp in its meta)") -%}
        {%- elif inner is not none -%}
            {%- if node.get('where') is mapping -%}
                {%- do dbt_studio._check_condition_references(node['where'], at ~ '.where', inner, ctx) -%}
            {%- endif -%}
            {%- set having = node.get('having') -%}
            {%- set listed = having is iterable and having is not string and having is not mapping -%}
            {%- for h in (having if listed else [having]) if h is mapping -%}
                {%- set here = at ~ '.having' ~ ('[' ~ loop.index0 ~ ']' if listed else '') -%}
                {%- if (h.get('agg') or 'count') | lower != 'count' or h.get('column') -%}
                    {%- do dbt_studio._check_column_reference(ctx, here ~ '.column', inner, h.get('column')) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for kind in ('in audience', 'not in audience') if kind in node -%}
        {%- set other = ctx.schema.models.get(node[kind]) -%}
        {%- if other is none or other.audience is none -%}
            {%- do dbt_studio._reference_problem(ctx, at ~ '.' ~ kind,
                                                 "'" ~ node[kind] ~ "' is not an audience model") -%}
        {%- elif other.audience.parent != model -%}
            {%- do dbt_studio._reference_problem(ctx, at ~ '.' ~ kind, "audience '" ~ node[kind] ~ "' is over '"
                                                 ~ other.audience.parent ~ "', not '" ~ model ~ "'") -%}
        {%- else -%}
            {%- do dbt_studio._check_recorded(ctx, at ~ '.' ~ kind, [node[kind]]) -%}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}

{#- The model a path of relationships from `model` reaches (its last hop), or none after recording why there is
    no such path; every model on the way must be one dbt recorded. -#}
{% macro _reached_model(ctx, at, model, target) %}
    {%- set found = dbt_studio._find_hops(ctx.schema, model, target) -%}
    {%- if found.error is not none -%}
        {%- do dbt_studio._reference_problem(ctx, at, found.error) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set reached = [] -%}
    {%- for hop in found.hops -%}{%- do reached.append(hop.to) -%}{%- endfor -%}
    {%- do dbt_studio._check_recorded(ctx, at, reached) -%}
    {{ return(reached | last if reached else model) }}
{% endmacro %}

{#- Returns whether the column is there (so that what compares with it can be checked next). -#}
{% macro _check_column_reference(ctx, at, model, column) %}
    {%- set problem = dbt_studio._column_problem(ctx.schema, model, column) -%}
    {%- if problem is not none -%}
        {%- do dbt_studio._reference_problem(ctx, at, problem) -%}
    {%- endif -%}
    {{ return(problem is none) }}
{% endmacro %}

{#- A number column compared with a word ('old' for an integer `age`): named by its key here, where the warehouse
    would refuse it only when the audience runs. A string that reads as a number ('42') passes, as the warehouse
    casts it; the column's type is looked at only when there is such a word. -#}
{% macro _check_value_type(ctx, at, model, column, op, value) %}
    {%- if (op or '=') | lower not in ('=', '!=', '<>', '<', '<=', '>', '>=', 'in', 'not in', 'between') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set values = value if value is iterable and value is not string and value is not mapping else [value] -%}
    {%- set words = [] -%}
    {%- for v in values if v is string and (v | trim | float(none)) is none -%}{%- do words.append(v) -%}{%- endfor -%}
    {%- if words | length == 0 -%}{{ return(none) }}{%- endif -%}
    {%- set numbers = dbt_studio._number_columns(ctx.schema, model) -%}
    {%- if (column | lower) in numbers -%}
        {%- do dbt_studio._reference_problem(ctx, at, "'" ~ words[0] ~ "' is not a number, and column '" ~ column
                                             ~ "' of model '" ~ model ~ "' is " ~ numbers[column | lower]) -%}
    {%- endif -%}
{% endmacro %}

{#- Models the audience reads must be among those dbt recorded for it (see `_relation`). -#}
{% macro _check_recorded(ctx, at, models) %}
    {%- if ctx.depends_on is none -%}{{ return(none) }}{%- endif -%}
    {%- for name in models if ctx.schema.models[name].unique_id not in ctx.depends_on -%}
        {%- do dbt_studio._reference_problem(ctx, at, dbt_studio._unrecorded_model(name)) -%}
    {%- endfor -%}
{% endmacro %}

{% macro _unrecorded_model(name) %}
    {{ return("reads model '" ~ name ~ "' (a through relationship) which the condition tree does not name; add "
              ~ "'via': '" ~ name ~ "' to the condition so that dbt records the dependency") }}
{% endmacro %}

{#- A broken reference at key path `at`: one more problem for validate, or the compile error. -#}
{% macro _reference_problem(ctx, at, message) %}
    {%- if ctx.problems is not none -%}
        {%- do ctx.problems.append({'key': at, 'message': message}) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("dbt_studio: audience '" ~ ctx.name ~ "': " ~ at ~ ": " ~ message) }}
{% endmacro %}
