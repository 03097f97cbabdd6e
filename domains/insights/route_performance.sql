-- insights.route_performance: one row per route (origin, destination) flown from New York.
-- Its relations are the product's inputs: flights (operations.flights) and airports (reference.airports).
-- Written in SQL that DuckDB and Spark SQL both run. A route's distance is the median of its
-- flights' (whole miles on this data, which the contract's integer type checks).
with routes as (
    select
        origin,
        dest,
        count(*) as flights,
        avg(case when status = 'cancelled' then 1 else 0 end) as cancelled_share,
        avg(arr_delay) as mean_arr_delay,
        cast(median(distance) as bigint) as distance
    from flights
    group by origin, dest
)
select
    routes.origin,
    routes.dest,
    airports.name as dest_name,
    routes.flights,
    routes.cancelled_share,
    routes.mean_arr_delay,
    routes.distance
from routes
left join airports on airports.faa = routes.dest
