-- insights.delay_vs_weather: one row per New York airport and weather condition at the departure hour.
-- Its relations are the product's inputs: flights (operations.flights) and weather (weather.hourly_observations).
-- Written in SQL that DuckDB and Spark SQL both run, so the domain moves to Spark by configuration alone.
-- Wind readings above 150 mph are instrument faults (weather.hourly_observations warns on them).
with departed as (
    select origin, time_hour, dep_delay from flights where status <> 'cancelled'
),
observed as (
    select origin, time_hour, precip, visib,
           case when wind_speed <= 150 then wind_speed end as wind_speed
    from weather
),
classified as (
    select
        departed.origin,
        departed.dep_delay,
        case
            when observed.origin is null then 'no_observation'
            when observed.precip > 0 then 'precipitation'
            when observed.visib < 3 then 'low_visibility'
            when observed.wind_speed > 25 then 'strong_wind'
            else 'clear'
        end as condition
    from departed
    left join observed on observed.origin = departed.origin and observed.time_hour = departed.time_hour
)
select
    origin,
    condition,
    count(*) as flights,
    avg(dep_delay) as mean_dep_delay,
    avg(case when dep_delay > 15 then 1 else 0 end) as delayed_share
from classified
group by origin, condition
