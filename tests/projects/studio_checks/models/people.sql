select 1 as person_id, 'Ann' as name, 'N' as region_code, 'gold' as tier_code
union all select 2, 'Bob', 'N', 'gold'
union all select 3, 'Cy', 'N', 'silver'
union all select 4, 'Di', 'S', 'silver'
union all select 5, 'Ed', 'S', 'gold'
union all select 6, 'Flo', null, 'bronze'
