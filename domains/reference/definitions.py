"""The reference domain's code location."""

from domains.reference.products import airlines, airports
from mesh_core import Cadence, domain_definitions

# Source-aligned: its products run daily at 06:00 New York time; the daemon ticks the schedule.
defs = domain_definitions("reference", [airlines, airports], cadence=Cadence("0 6 * * *", timezone="America/New_York"))
