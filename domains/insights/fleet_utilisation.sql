-- insights.fleet_utilisation: one row per tail number flown from New York (not cancelled).
-- Its relations are the product's inputs: flights (operations.flights) and aircraft (fleet.aircraft).
-- Written in SQL that DuckDB and Spark SQL both run. One pass over the flights to a row per
-- (tail number, carrier); everything after it is small.
with per_carrier as (
    select
        tailnum,
        carrier,
        count(*) as size,
        coalesce(sum(distance), 0) as distance,
        coalesce(sum(air_time), 0) as air_minutes
    from flights
    where tailnum is not null and status <> 'cancelled'
    group by tailnum, carrier
),
ranked as (
    -- the carrier that flew it most (ties: the first by code)
    select *, row_number() over (partition by tailnum order by size desc, carrier) as place
    from per_carrier
),
per_tail as (
    select
        tailnum,
        max(case when place = 1 then carrier end) as carrier,
        sum(size) as flights,
        cast(sum(distance) as bigint) as distance_miles,
        sum(air_minutes) / 60 as air_hours
    from ranked
    group by tailnum
)
select
    per_tail.tailnum,
    per_tail.carrier,
    per_tail.flights,
    per_tail.distance_miles,
    per_tail.air_hours,
    aircraft.manufacturer,
    aircraft.model,
    aircraft.seats,
    aircraft.tailnum is not null as in_fleet_registry
from per_tail
left join aircraft on aircraft.tailnum = per_tail.tailnum
