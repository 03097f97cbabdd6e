"""The reference domain's code location."""

from domains.reference.products import airlines, airports
from mesh_core import domain_definitions

defs = domain_definitions("reference", [airlines, airports])
