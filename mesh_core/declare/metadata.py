"""Reading what Mesh writes in an asset's metadata: a spec holds raw values or Dagster's wrappers."""

from __future__ import annotations

from typing import Any, Mapping


def meta_value(metadata: Mapping[str, Any], key: str) -> Any:
    """The plain value under `key` (a MetadataValue's `.value`, or the raw value), None if absent."""
    found = metadata.get(key)
    return getattr(found, "value", found)
