"""References to a data product by domain and product name."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from mesh_core.declare.names import is_valid_name


@dataclass(frozen=True, order=True)
class ProductRef:
    """Names one data product of the mesh: `ProductRef("operations", "flights")`."""

    domain: str
    product: str

    def __post_init__(self) -> None:
        for part in (self.domain, self.product):
            if not is_valid_name(part):
                raise ValueError(
                    f"Invalid product reference {self.domain!r}.{self.product!r}: domain and "
                    "product names are lower snake case, e.g. 'operations.flights'."
                )

    @classmethod
    def parse(cls, value: "ProductRef | str") -> "ProductRef":
        """Accept a ProductRef or the string form 'domain.product'."""
        if isinstance(value, ProductRef):
            return value
        if isinstance(value, str) and value.count(".") == 1:
            domain, product = value.split(".")
            return cls(domain, product)
        raise ValueError(
            f"Invalid product reference {value!r}: write it as 'domain.product' "
            "(e.g. 'operations.flights') or ProductRef('operations', 'flights')."
        )

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey([self.domain, self.product])

    @classmethod
    def from_asset_key(cls, key: dg.AssetKey) -> "ProductRef":
        if len(key.path) != 2:
            raise ValueError(f"Asset key {key.to_user_string()} is not a Mesh product key [domain, product].")
        return cls(*key.path)

    def __str__(self) -> str:
        return f"{self.domain}.{self.product}"
