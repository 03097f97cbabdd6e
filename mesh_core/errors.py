"""The one error hierarchy of Mesh.

Definition errors (a product or domain that must not load) are kept apart from
data failures (a run whose output was blocked). Every error is picklable, since
Dagster may run steps in subprocesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colour and cursor codes


class MeshError(Exception):
    """Root of every error Mesh raises."""


def plain_message(text: str) -> str:
    """A message as it must read in a file or a notification: without the terminal colour codes
    some libraries and tools put in theirs."""
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class Violation:
    """One broken rule: which product, which rule, what is wrong and how to fix it."""

    domain: str
    product: str | None
    rule: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.domain}.{self.product}" if self.product else self.domain
        return f"[{self.rule}] {where}: {self.message} Fix: {self.fix}"


class DefinitionError(MeshError):
    """A product or domain definition breaks one or more rules; it does not load."""

    def __init__(self, violations: tuple[Violation, ...] | list[Violation]):
        self.violations = tuple(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(
            f"{len(self.violations)} problem(s) in the mesh definition:\n{lines}"
        )

    def __reduce__(self):
        return (type(self), (self.violations,))


class WorkspaceError(MeshError):
    """workspace.yaml or one of the code locations it names cannot be loaded."""


class PublishBlockedError(MeshError):
    """An error-severity check failed, so the product's output was not published."""


class BreakingChangeError(PublishBlockedError):
    """The code breaks the published contract of a major without a major version bump, so nothing was published."""


class ProductNotPublishedError(MeshError):
    """An input product has no published version to read yet."""


class AccessDeniedError(MeshError):
    """A domain tried to read another domain's internal product."""


class PreviewError(MeshError):
    """`mesh preview` cannot compare: not a git repository, an unknown ref, a side that does not load."""


class StorageError(MeshError):
    """A port or a domain's DuckDB store could not be written or read; the message names path and cause."""


class VersionNotFoundError(StorageError):
    """A product version was asked for that the port does not have (never published, or removed by retention)."""


class IntegrityError(StorageError):
    """A port's stored files are not what Mesh published: a data file whose checksum does not match, or a
    commit file cut short, garbled or unloadable. `mesh repair` sets such a version aside."""


class RegistryError(MeshError):
    """The contract registry at a URI cannot be read, written or parsed; the message names the URI (and
    the file or object key), the cause, and how to fix it."""


class StaleRegistryWrite(RegistryError):
    """A registry write was based on a read that is no longer the newest entry; nothing was written.
    Read again and retry."""


class ProductRetiredError(MeshError):
    """A retired product was asked to materialize."""


class ProductOutputError(MeshError):
    """A product's output cannot be published as it is: not a pandas DataFrame, no columns, columns a
    reader cannot address, or values Delta Lake cannot store; the message says which and how to fix it."""


class ContractConversionError(ProductOutputError):
    """A product's output stream has values its contract's types cannot hold without changing them: the
    message names the product, the column, the type and a sample of the values, in a contract failure's
    words (`col: N value(s) do not convert to T (sample)`)."""

    def __init__(self, product: str, column: str, dtype: str, problem: str):
        self.product, self.column, self.dtype, self.problem = product, column, dtype, problem
        super().__init__(
            f"{product} cannot be published: {problem}. A contract may change how a value is stored, never the "
            f"value: convert or round '{column}' in the product, or declare the type its values have."
        )

    def __reduce__(self):
        return (type(self), (self.product, self.column, self.dtype, self.problem))



class SparkUnavailableError(MeshError):
    """The Spark a domain configured (MESH_SPARK_REMOTE or its SparkEngine resource) could not be reached or started."""
