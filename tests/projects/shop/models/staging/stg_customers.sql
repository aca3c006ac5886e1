select
    ID as customer_id,
    First_Name as first_name,
    lower(trim(EMAIL)) as email,
    nullif(lower(trim(Plan)), '') as plan,
    Signed_Up_At as signed_up_at
from {{ ref('raw_customers') }}
