select * from {{ ref('seed_events') }}
