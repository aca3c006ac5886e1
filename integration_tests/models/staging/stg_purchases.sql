select
    cast(purchase_id as varchar) as purchase_id,
    cast(user_id as varchar) as user_id,
    cast(plant_id as varchar) as plant_id,
    cast(product_name as varchar) as product_name,
    cast(price as decimal(10, 2)) as price,
    cast(used_coupon as boolean) as used_coupon,
    cast(pdp_url as varchar) as pdp_url,
    cast(purchased_at as timestamp) as purchased_at
from {{ raw('purchases') }}
