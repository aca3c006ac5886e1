select 'm' || cast(a.d * 1000 + b.d * 100 + c.d * 10 + e.d as varchar) as user_id
from {{ ref('seed_digits') }} as a
cross join {{ ref('seed_digits') }} as b
cross join {{ ref('seed_digits') }} as c
cross join {{ ref('seed_digits') }} as e
