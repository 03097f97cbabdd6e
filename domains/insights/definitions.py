"""The insights domain's code location."""

from domains.insights.products import (
    carrier_on_time_performance,
    delay_vs_weather,
    fleet_utilisation,
    route_performance,
)
from mesh_core import domain_definitions

defs = domain_definitions(
    "insights",
    [carrier_on_time_performance, delay_vs_weather, fleet_utilisation, route_performance],
)
