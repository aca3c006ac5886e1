select 'gold' as tier_code, 'Gold' as tier_label
union all select 'silver', 'Silver'
union all select 'bronze', 'Bronze'
