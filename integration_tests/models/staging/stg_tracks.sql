select
    cast(anonymous_id as varchar) as anonymous_id,
    cast(user_id as varchar) as user_id,
    cast(event as varchar) as event,
    cast(session_id as varchar) as session_id,
    cast(timestamp as timestamp) as timestamp
from {{ raw('tracks') }}
