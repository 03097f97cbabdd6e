"""The run tags that say which domain a run belongs to, whatever launched it.

`mesh materialize`, the UI's Materialize button, a schedule, the automation sensor and a stream
sensor all tag their runs with these, so a domain's runs can be filtered (and limited) as one.
"""

from __future__ import annotations

DOMAIN_TAG = "mesh/domain"


def domain_tags(domain: str) -> dict[str, str]:
    return {DOMAIN_TAG: domain}
