"""What the sharing server shares: one share per domain of the workspace, its tables the products
published in the domain's ports, and which of them a recipient may see.

Share = schema = the domain (from workspace.yaml, parsed only: the server never imports a
domain's code). In it, each product with a published port is a table `<product>`, its current
major; `<product>_v<N>` names major N of it: the current port for the current major, the port
`<product>.v<N>` that an older major is published to beside it. Nothing else is a table.

A recipient sees a table when `mesh_core.declare.readable.read_findings` finds no error for its
reader (its domain if the recipient is one, else `recipient:<name>`, an outsider) reading what
the port's current version was published as: the rule lint and the IO manager apply. Every name
a request carries is validated (lower snake case, `_v<N>` strict) before a path is built from it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

from mesh_core.declare.majors import major_of
from mesh_core.declare.names import NAME_PATTERN, is_valid_name
from mesh_core.declare.readable import read_findings
from mesh_core.declare.ref import ProductRef
from mesh_core.errors import MeshError, ProductNotPublishedError
from mesh_core.share.errors import ShareBadRequestError, ShareForbiddenError, ShareNotFoundError
from mesh_core.storage.port import OutputPort, PortVersion

log = logging.getLogger(__name__)

MAX_NAME = 255  # PROTOCOL.md: object names never longer
# A major as written in a table name: no sign, no leading zero, at most 9 digits.
_MAJOR_TABLE = re.compile(r"(?P<product>[a-z][a-z0-9_]*)_v(?P<major>0|[1-9][0-9]{0,8})")
_MAJOR_FOLDER = re.compile(r"(?P<product>[a-z][a-z0-9_]*)\.v(?P<major>0|[1-9][0-9]{0,8})")


def request_name(kind: str, value: str) -> str:
    """A share, schema or table name from a request (case-insensitive, PROTOCOL.md), as Mesh spells it;
    anything that is not a Mesh name is refused here, before it can reach a path."""
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise ShareBadRequestError(f"The {kind} name is longer than {MAX_NAME} characters: no {kind} is named so.")
    name = value.lower()
    if not is_valid_name(name):
        raise ShareBadRequestError(f"{value!r} is not a {kind} name: names here are lower snake case "
                                   f"({NAME_PATTERN.pattern}). List them with the list endpoints.")
    return name


@dataclass(frozen=True)
class SharedTable:
    """One table of a share: which product, which major, and the port it is read from."""

    share: str
    schema: str
    name: str
    ref: ProductRef
    major: int | None  # the major the name asks for (`_v<N>`); None for the bare product name
    port: OutputPort = field(compare=False, repr=False)

    @property
    def full_name(self) -> str:
        return f"{self.share}.{self.schema}.{self.name}"

    def item(self) -> dict[str, str]:
        return {"name": self.name, "schema": self.schema, "share": self.share}


class ShareCatalog:
    """The shares of one workspace over one ports location. Cheap to ask: it reads workspace.yaml
    and lists the ports folder on every call, so a new domain or product shows without a restart."""

    def __init__(self, workspace: Path, ports_uri: str, *, today: Callable[[], date] = date.today):
        self.workspace = Path(workspace)
        self.ports_uri = ports_uri.rstrip("/")
        self.today = today

    # -- shares ------------------------------------------------------------------------

    def shares(self) -> list[str]:
        """The domains of the workspace, sorted (only names Mesh accepts, so none reaches a path unchecked)."""
        from mesh_core.governance.workspace import read_entries

        return sorted({entry.name for entry in read_entries(self.workspace) if is_valid_name(entry.name)})

    def share(self, name: str) -> str:
        share = request_name("share", name)
        if share not in self.shares():
            raise ShareNotFoundError(f"No share named '{share}': shares are the mesh's domains. "
                                     "List them with GET /shares.")
        return share

    def schema(self, share: str, name: str) -> str:
        share, schema = self.share(share), request_name("schema", name)
        if schema != share:
            raise ShareNotFoundError(f"Share '{share}' has no schema '{schema}': each share has one schema, "
                                     f"named like the share ('{share}').")
        return schema

    # -- tables ------------------------------------------------------------------------

    def tables(self, share: str, reader: str) -> list[SharedTable]:
        """The tables of a share `reader` may see, sorted by name: each published product, and each
        major it publishes. A port that cannot be read is left out (and logged), not the whole list."""
        share = self.share(share)
        products, older = self._folders(share)
        found: list[SharedTable] = []
        for product in sorted(products):
            port = self._port(share, product, None)
            latest = self._latest(port)
            if latest is None or self.refusal(port.ref, latest, reader):
                continue
            found.append(SharedTable(share, share, product, port.ref, None, port))
            current = major_of(latest.product_version)
            if current is not None:
                found.append(SharedTable(share, share, f"{product}_v{current}", port.ref, current, port))
        for product, major in sorted(older):
            port = self._port(share, product, major)
            latest = self._latest(port)
            current_port = self._port(share, product, None) if product in products else None
            current = self._latest(current_port) if current_port else None
            if current is not None and major_of(current.product_version) == major:
                continue  # the current port already answers to this name
            if latest is None or self.refusal(port.ref, latest, reader):
                continue
            found.append(SharedTable(share, share, f"{product}_v{major}", port.ref, major, port))
        return sorted(found, key=lambda table: table.name)

    def table(self, share: str, schema: str, name: str, reader: str) -> SharedTable:
        """The table `share.schema.name`, if `reader` may see it: 404 if there is none, 403 naming the
        rule if there is one it may not read."""
        share = self.share(share)
        self.schema(share, schema)
        name = request_name("table", name)
        table = self._find(share, name)
        self.check_visible(table, reader)
        return table

    def check_visible(self, table: SharedTable, reader: str) -> PortVersion:
        """The port's current version if `reader` may read the table; else ShareForbiddenError naming the rule."""
        latest = self._current(table)
        refusal = self.refusal(table.ref, latest, reader)
        if refusal:
            raise ShareForbiddenError(f"{_who(reader)} may not read {table.full_name} ({table.ref}"
                                      f"{'' if table.major is None else f' major {table.major}'}): {refusal}")
        return latest

    def check_version(self, table: SharedTable, published: PortVersion, reader: str) -> None:
        """An older version is read under the rules it was published with as well: a version published
        internal (or as a draft) stays so for outsiders after the product went public."""
        refusal = self.refusal(table.ref, published, reader)
        if refusal:
            raise ShareForbiddenError(f"{_who(reader)} may not read version {published.version} of {table.full_name}, "
                                      f"as it was published ({published.access}, {published.lifecycle.status.value}): "
                                      f"{refusal} The current version may be read: query without `version` or `timestamp`.")

    def refusal(self, ref: ProductRef, latest: PortVersion, reader: str) -> str:
        """Why `reader` may not read `ref` as its current version was published ('' if it may)."""
        errors, _ = read_findings(reader, ref, latest.access, latest.lifecycle, self.today())
        return " ".join(f"[{v.rule}] {v.message} Fix: {v.fix}" for v in errors)

    def _find(self, share: str, name: str) -> SharedTable:
        products, older = self._folders(share)
        if name in products:
            port = self._port(share, name, None)
            return SharedTable(share, share, name, port.ref, None, port)
        match = _MAJOR_TABLE.fullmatch(name)
        if match is None or match["product"] not in products | {p for p, _ in older}:
            raise ShareNotFoundError(f"Share '{share}' has no table '{name}'. List its tables with "
                                     f"GET /shares/{share}/schemas/{share}/tables.")
        product, major = match["product"], int(match["major"])
        if product in products:
            port = self._port(share, product, None)
            latest = self._latest(port)
            if latest is not None and major_of(latest.product_version) == major:
                return SharedTable(share, share, name, port.ref, major, port)
        if (product, major) in older:
            port = self._port(share, product, major)
            return SharedTable(share, share, name, port.ref, major, port)
        majors = sorted({m for p, m in older if p == product})
        raise ShareNotFoundError(f"{share}.{product} publishes no major {major}"
                                 + (f"; older majors published beside the current one: {majors}." if majors else "."))

    def _current(self, table: SharedTable) -> PortVersion:
        try:
            return table.port.latest()
        except ProductNotPublishedError:
            raise ShareNotFoundError(f"{table.full_name} has no published version yet.") from None

    def _latest(self, port: OutputPort) -> PortVersion | None:
        try:
            return port.latest()
        except ProductNotPublishedError:
            return None
        except MeshError as exc:  # a damaged port: the other tables still list
            log.warning("Leaving %s out of the shared tables: %s", port.ref, exc)
            return None

    def _port(self, share: str, product: str, major: int | None) -> OutputPort:
        folder = product if major is None else f"{product}.v{major}"
        return OutputPort(ProductRef(share, product), f"{self.ports_uri}/{share}/ports/{folder}")

    def _folders(self, share: str) -> tuple[set[str], set[tuple[str, int]]]:
        """(products with a port folder, (product, major) of older majors' folders) in the share's domain."""
        import pyarrow.fs as pafs

        root = f"{self.ports_uri}/{share}/ports"
        try:
            fs, path = pafs.FileSystem.from_uri(root)
            entries = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except (OSError, ValueError) as exc:
            raise MeshError(f"Could not list the ports of domain '{share}' at {root}: {exc}") from exc
        products, older = set(), set()
        for info in entries:
            if info.type != pafs.FileType.Directory:
                continue
            name = info.base_name
            match = _MAJOR_FOLDER.fullmatch(name)
            if is_valid_name(name):
                products.add(name)
            elif match and is_valid_name(match["product"]):
                older.add((match["product"], int(match["major"])))
        return products, older


def _who(reader: str) -> str:
    return f"Recipient '{reader.split(':', 1)[1]}'" if reader.startswith("recipient:") else f"Domain '{reader}'"
