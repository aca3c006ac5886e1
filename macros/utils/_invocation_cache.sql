{#- A dict that lives for one dbt invocation and is shared by every node it compiles (`name`: whose entries).

    It hangs off `graph`, the one flat graph of the invocation's manifest, and is emptied when another invocation
    finds it (a manifest handed from one dbtRunner call to the next keeps its graph). Two threads of one
    invocation may both fill an entry; the entries must be the same answer either way. -#}
{% macro _invocation_cache(name) %}
    {%- set caches = graph.setdefault('dbt_studio_cache', {}) -%}
    {%- if caches.get('invocation_id') != invocation_id -%}
        {%- do caches.clear() -%}
        {%- do caches.update({'invocation_id': invocation_id}) -%}
    {%- endif -%}
    {{ return(caches.setdefault(name, {})) }}
{% endmacro %}
