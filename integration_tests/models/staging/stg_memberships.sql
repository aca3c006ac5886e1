select
    cast(user_id as varchar) as user_id,
    cast(product_id as varchar) as product_id
from {{ raw('memberships') }}
