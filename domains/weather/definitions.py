"""The weather domain's code location."""

from domains.weather.products import hourly_observations
from mesh_core import domain_definitions

defs = domain_definitions("weather", [hourly_observations])
