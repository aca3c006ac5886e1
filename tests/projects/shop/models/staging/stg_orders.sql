select
    Order_ID as order_id,
    lower(trim(Customer_Email)) as email,
    Amount as amount,
    Ordered_At as ordered_at,
    lower(Status) as status
from {{ ref('raw_orders') }}
