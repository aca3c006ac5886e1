{{ dbt_studio.audience(parent='people', where={'column': 'region_code', 'op': '=', 'value': 'S'}) }}
