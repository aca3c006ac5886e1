select * from {{ ref('seed_plans') }}
