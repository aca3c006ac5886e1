{{ dbt_studio.audience(parent='people', where={'column': 'tier_code', 'op': '=', 'value': 'gold'}) }}
