select
    cast(user_id as varchar) as user_id,
    cast(name as varchar) as name,
    cast(email as varchar) as email,
    cast(geo_region as varchar) as geo_region,
    cast(age as integer) as age
from {{ raw('users') }}
