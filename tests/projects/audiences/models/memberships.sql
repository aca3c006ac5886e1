select * from {{ ref('seed_memberships') }}
