select
    cast(user_id as varchar) as user_id,
    cast(product_id as varchar) as product_id,
    cast(url as varchar) as url,
    cast(timestamp as timestamp) as timestamp
from {{ raw('product_viewed') }}
