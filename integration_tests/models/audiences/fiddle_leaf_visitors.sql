{#- Visitors of a product page: viewed the fiddle-leaf fig page at least once. -#}
{{ dbt_studio.audience(
    parent='stg_users',
    where={'performed': 'stg_product_viewed', 'where': {'column': 'url', 'op': '=', 'value': '/products/fiddle-leaf-fig'}},
    traits=[{'name': 'last_fiddle_view_at', 'related': 'stg_product_viewed', 'agg': 'max', 'column': 'timestamp',
             'where': {'column': 'url', 'op': '=', 'value': '/products/fiddle-leaf-fig'}}],
    as_of=var('as_of', '2026-01-01'),
) }}
