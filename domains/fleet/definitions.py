"""The fleet domain's code location."""

from domains.fleet.products import aircraft
from mesh_core import Cadence, domain_definitions

# Source-aligned: its products run daily at 06:00 New York time; the daemon ticks the schedule.
defs = domain_definitions("fleet", [aircraft], cadence=Cadence("0 6 * * *", timezone="America/New_York"))
