select * from {{ ref('seed_orders') }} where 1 = 0
