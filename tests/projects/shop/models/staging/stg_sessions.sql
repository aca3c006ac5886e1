select
    Anonymous_ID as anonymous_id,
    Customer_ID as customer_id,
    Page as page,
    TS as ts
from {{ ref('raw_sessions') }}
