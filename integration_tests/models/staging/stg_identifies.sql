select
    cast(anonymous_id as varchar) as anonymous_id,
    cast(user_id as varchar) as user_id,
    cast(email as varchar) as email,
    cast(timestamp as timestamp) as timestamp,
    cast(context_campaign_source as varchar) as context_campaign_source
from {{ raw('identifies') }}
