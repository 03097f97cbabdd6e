-- insights.carrier_on_time_performance: one row per carrier.
-- Its relations are the product's inputs: flights (operations.flights) and airlines (reference.airlines).
-- Written in SQL that DuckDB and Spark SQL both run. Completed flights are those that arrived: on time, or delayed.
with per_carrier as (
    select
        carrier,
        count(*) as flights,
        count(*) filter (where status = 'cancelled') as cancelled,
        count(*) filter (where status = 'diverted') as diverted,
        count(*) filter (where status = 'on_time') as on_time,
        count(*) filter (where status in ('on_time', 'delayed')) as completed,
        avg(arr_delay) filter (where status in ('on_time', 'delayed')) as mean_arr_delay
    from flights
    group by carrier
)
select
    per_carrier.carrier,
    airlines.name as airline_name,
    flights,
    cancelled,
    diverted,
    on_time / nullif(completed, 0) as on_time_rate,
    mean_arr_delay
from per_carrier
left join airlines on airlines.carrier = per_carrier.carrier
