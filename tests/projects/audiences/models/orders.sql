select * from {{ ref('seed_orders') }}
