{#- Generated from sync_runner/project/declared.py by sync_runner/reference.py: do not edit. -#}
{% macro _identity_keys() %}
    {{ return({
        'id_source': {'title': 'an id source', 'keys': ['relation', 'ids', 'timestamp', 'loaded_at', 'name', 'trust']},
        'id_type': {'title': 'an id type', 'keys': ['normalize', 'blocklist', 'blocklist_regex', 'include', 'exclude',
                                                    'include_regex', 'exclude_regex', 'max_edges']},
    }) }}
{% endmacro %}
