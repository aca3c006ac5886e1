{#- Identifier hygiene: normalisation and the reason (or null) an identifier is dropped before stitching. -#}

{#- Normalised value of an identifier: the id type's `normalize` template, else lower(trim()) for emails and
    trim() for everything else. Blank results become null. -#}
{% macro _normalized_id(id_type, expr, id_types) %}
    {%- set spec = id_types.get(id_type, {}) -%}
    {%- set default = 'lower(trim({{ value }}))' if 'email' in id_type | lower else 'trim({{ value }})' -%}
    {%- set template = spec.get('normalize', default) -%}
    {%- set rendered = modules.re.sub('\{\{\s*value\s*\}\}', expr | replace('\\', '\\\\'), template) -%}
    {{- "nullif(" ~ rendered ~ ", '')" -}}
{% endmacro %}

{#- A CASE expression naming why a normalised identifier is dropped: blocklisted, excluded, or not included. -#}
{% macro _id_reject_reason(id_type, value, id_types) %}
    {%- set spec = id_types.get(id_type, {}) -%}
    {%- set blocklist = spec.get('blocklist', dbt_studio.setting('stitch_blocklist')) -%}
    {%- set blocklist_regex = spec.get('blocklist_regex', dbt_studio.setting('stitch_blocklist_regex')) -%}
    case
            when {{ value }} is null then 'empty'
            {%- if blocklist %}
            when lower({{ value }}) in ({{ dbt_studio._literals(blocklist | map('lower')) }}) then 'blocklist'
            {%- endif %}
            {%- for pattern in blocklist_regex %}
            when {{ dbt_studio.regex_search(value, pattern) }}
                then {{ dbt_studio.string_literal('blocklist_regex: ' ~ pattern) }}
            {%- endfor %}
            {%- if spec.get('exclude') %}
            when {{ value }} in ({{ dbt_studio._literals(spec.exclude) }}) then 'exclude'
            {%- endif %}
            {%- for pattern in spec.get('exclude_regex', []) %}
            when {{ dbt_studio.regex_search(value, pattern) }}
                then {{ dbt_studio.string_literal('exclude_regex: ' ~ pattern) }}
            {%- endfor %}
            {%- if spec.get('include') %}
            when {{ value }} not in ({{ dbt_studio._literals(spec.include) }}) then 'not_included'
            {%- endif %}
            {%- if spec.get('include_regex') %}
            when not (
                {%- for pattern in spec.include_regex -%}
                {{ dbt_studio.regex_search(value, pattern) }}{{ " or " if not loop.last }}
                {%- endfor -%}
            ) then 'not_included_regex'
            {%- endif %}
        end
{%- endmacro %}

{#- Comma-separated string literals of `values`. -#}
{% macro _literals(values) -%}
    {%- for v in values %}{{ dbt_studio.string_literal(v) }}{{ ", " if not loop.last }}{% endfor -%}
{%- endmacro %}
