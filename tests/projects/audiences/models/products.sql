select * from {{ ref('seed_products') }}
