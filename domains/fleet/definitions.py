"""The fleet domain's code location."""

from domains.fleet.products import aircraft
from mesh_core import domain_definitions

defs = domain_definitions("fleet", [aircraft])
