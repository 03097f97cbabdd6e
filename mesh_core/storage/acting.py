"""The domain storage acts for: the run's domain inside a run, else the domain it was made for.

A product's step (its function, its IO manager, Mesh's bookkeeping around it) runs `acting_for`
the product's own domain, taken from the product's definition, not from the arguments of any
storage object. Every write then checks that the storage it goes to belongs to that domain, and
every read is decided for that domain (`mesh_core.declare.readable`), so
`DomainStorage(data_dir, "vault")` made inside another domain's run neither writes vault's ports
nor reads its internal products. Outside a run (an operator's script, `mesh read`, `mesh
repair`) there is no run's domain: a storage object acts for the domain it was made for.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from mesh_core.errors import AccessDeniedError

_acting: ContextVar[str | None] = ContextVar("mesh_acting_domain", default=None)


@contextmanager
def acting_for(domain: str) -> Iterator[None]:
    """Run the block as `domain`'s run. Restores the previous value by value, not by token: a
    step's generator may be resumed by Dagster from another context than the one that set it."""
    previous = _acting.get()
    _acting.set(domain)
    try:
        yield
    finally:
        _acting.set(previous)


def acting_domain(default: str) -> str:
    """The run's domain, or `default` (the storage's own) outside any run."""
    return _acting.get() or default


def check_write(owner: str, what: str) -> None:
    """Refuse a write to `owner`'s storage from another domain's run."""
    acting = _acting.get()
    if acting is not None and acting != owner:
        raise AccessDeniedError(
            f"Domain '{acting}' may not write {what}: a domain writes only its own ports and store, and this "
            f"run is the '{acting}' domain's. Declare the product in the '{owner}' domain's code location, "
            f"or read {owner}'s public products as inputs.")
