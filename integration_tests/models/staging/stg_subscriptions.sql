select
    cast(product_id as varchar) as product_id,
    cast(name as varchar) as name,
    cast(delivery as varchar) as delivery,
    cast(price as decimal(10, 2)) as price
from {{ raw('subscriptions') }}
