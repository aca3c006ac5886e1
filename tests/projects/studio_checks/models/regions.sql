-- region 'N' twice: the data contradicts the many:1 that people declare towards regions
select 'N' as region_code, 'North' as region_name
union all select 'N', 'Nord'
union all select 'S', 'South'
