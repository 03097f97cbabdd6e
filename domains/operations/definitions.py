"""The operations domain's code location."""

from domains.operations.products import flights
from mesh_core import domain_definitions

defs = domain_definitions("operations", [flights])
