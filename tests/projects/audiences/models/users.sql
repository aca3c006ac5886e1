select * from {{ ref('seed_users') }}
