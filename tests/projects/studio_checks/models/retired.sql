{{ config(enabled=false) }}
select 1 as person_id
