{#-
    Unknown keys of an audience: in its condition tree, traits and splits. The first one fails the compile, named
    by where it is (`where.and[1].within_day`), with a did-you-mean, so a misspelled filter (`within_day`) never
    drops out of the audience silently; so do a node of no known kind, a value outside a fixed set (an
    operator, an aggregate) and a number out of its range (within_days). The keys, sets and ranges are
    `dbt_studio._audience_keys()`, generated from the declared schema (sync_runner/project/declared.py) that
    `dbt-studio validate` checks the recorded arguments against, and the messages are validate's, key path
    included (tests/audiences/test_audiences.py compares the two).
-#}
{% macro _check_audience_keys(name, spec) %}
    {%- set keys = dbt_studio._audience_keys() -%}
    {%- set at = "dbt_studio: audience '" ~ name ~ "': " -%}
    {%- if spec.where is mapping -%}
        {%- do dbt_studio._check_condition_keys(spec.where, at ~ 'where', keys) -%}
    {%- endif -%}
    {%- for trait in spec.traits or [] if trait is mapping -%}
        {%- set here = at ~ 'traits[' ~ loop.index0 ~ ']' -%}
        {%- do dbt_studio._check_keys(here, trait, keys['trait']['keys'], what=keys['trait']['title'],
                                      key_path=true) -%}
        {%- do dbt_studio._check_choices(here, trait, keys['trait']['choices']) -%}
        {%- if trait.get('where') is mapping -%}
            {%- do dbt_studio._check_condition_keys(trait['where'], here ~ '.where', keys) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if spec.splits is mapping -%}
        {%- do dbt_studio._check_keys(at ~ 'splits', spec.splits, keys['splits']['keys'],
                                      what=keys['splits']['title'], key_path=true) -%}
    {%- endif -%}
{% endmacro %}

{#- One node and its children. -#}
{% macro _check_condition_keys(node, at, keys) %}
    {%- set kinds = [('and', ['and']), ('or', ['or']), ('not', ['not']), ('property', ['column']),
                     ('related', ['has', 'has not']), ('event', ['performed', 'did not perform']),
                     ('membership', ['in audience', 'not in audience'])] -%}
    {%- set found = [] -%}
    {%- for kind, markers in kinds -%}
        {%- for marker in markers if marker in node and found | length == 0 -%}
            {%- do found.append(kind) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if found | length == 0 -%}
        {%- set known = [] -%}
        {%- for kind, markers in kinds -%}{%- do known.extend(markers) -%}{%- endfor -%}
        {{ exceptions.raise_compiler_error(at ~ ": unknown condition with keys " ~ node.keys() | join(', ')
                                           ~ " (a condition has one of: " ~ known | join(', ') ~ ")") }}
    {%- endif -%}
    {%- set kind = found[0] -%}
    {%- do dbt_studio._check_keys(at, node, keys[kind]['keys'], what=keys[kind]['title'], key_path=true) -%}
    {%- do dbt_studio._check_choices(at, node, keys[kind].get('choices')) -%}
    {%- do dbt_studio._check_numbers(at, node, keys[kind].get('numbers')) -%}
    {%- for group in ('and', 'or') if node.get(group) is iterable and node.get(group) is not string -%}
        {%- for child in node[group] if child is mapping -%}
            {%- do dbt_studio._check_condition_keys(child, at ~ '.' ~ group ~ '[' ~ loop.index0 ~ ']', keys) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for inner in ('not', 'where') if node.get(inner) is mapping -%}
        {%- do dbt_studio._check_condition_keys(node[inner], at ~ '.' ~ inner, keys) -%}
    {%- endfor -%}
    {%- set having = node.get('having') -%}
    {%- for h in ([having] if having is mapping else having if having is iterable and having is not string else [])
          if h is mapping -%}
        {%- set here = at ~ '.having' ~ ('' if having is mapping else '[' ~ loop.index0 ~ ']') -%}
        {%- do dbt_studio._check_keys(here, h, keys['having']['keys'], what=keys['having']['title'], key_path=true) -%}
        {%- do dbt_studio._check_choices(here, h, keys['having']['choices']) -%}
    {%- endfor -%}
    {%- for key, surface in [('times', 'comparison'), ('first', 'time_comparison'), ('last', 'time_comparison')]
          if node.get(key) is mapping -%}
        {%- do dbt_studio._check_keys(at ~ '.' ~ key, node[key], keys[surface]['keys'],
                                      what=keys[surface]['title'], key_path=true) -%}
        {%- do dbt_studio._check_choices(at ~ '.' ~ key, node[key], keys[surface]['choices']) -%}
    {%- endfor -%}
{% endmacro %}
