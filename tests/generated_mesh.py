"""Valid domains written by hand, as the README's "Add a domain" says, one for each optional setting.

`add_domains(root, workspace)` writes them into a copy of the repository (folder, workspace entry)
and returns their names; the copy then runs `mesh contracts update` and `mesh deploy helm` as a
user would. What they read from the rest of the mesh is chosen from the workspace: any active
public product, by its published columns, so they fit whatever mesh they are added to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mesh_core.declare.lifecycle import Lifecycle, Status
from mesh_core.declare.metadata import meta_value
from mesh_core.governance.workspace import MeshWorkspace
from tests.support import free_name


@dataclass(frozen=True)
class Kind:
    """One generated domain: which optional settings it uses."""

    stem: str
    cadence: bool = True
    teams: bool = True
    access: str = "public"
    sources: int = 1
    own_consumer: bool = False  # a product reading this domain's own source
    reads_mesh: int = 0  # products reading other domains' public products
    reads_generated: tuple[str, ...] = ()  # stems of generated domains it reads
    products: tuple[str, str] = ("records", "summary")  # names of its source and own-consumer products


KINDS = (
    Kind("gen_no_cadence", cadence=False, own_consumer=True),
    Kind("gen_no_teams", teams=False),
    Kind("gen_only_sources", sources=2),
    Kind("gen_only_consumers", sources=0, reads_mesh=2, reads_generated=("gen_only_sources",)),
    Kind("gen_internal", access="internal", own_consumer=True),
    Kind("penguins", own_consumer=True, products=("observations", "colonies")),  # the README's example
)


@dataclass
class _Domain:
    name: str
    kind: Kind
    contracts: list[str] = field(default_factory=list)
    suites: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def readable(workspace: MeshWorkspace, count: int) -> list[tuple[str, str]]:
    """(product, column) of `count` active public products of the mesh, from different domains first."""
    found = []
    for location in workspace.domain_order():
        for ref, spec in location.products.items():
            columns = [c.name for c in spec.metadata["dagster/column_schema"].columns]
            if (spec.metadata["mesh/access"] == "public" and columns and not meta_value(spec.metadata, "mesh/previous_majors")
                    and Lifecycle.from_metadata(spec.metadata).status is Status.ACTIVE):
                found.append((str(ref), columns[0]))
                break
    return found[-count:] if count else []


def add_domains(root: Path, kinds: tuple[Kind, ...] = KINDS) -> list[str]:
    workspace = MeshWorkspace.load(root / "workspace.yaml")
    names: dict[str, str] = {}
    for kind in kinds:
        names[kind.stem] = free_name(root / "workspace.yaml", kind.stem)
        (root / "domains" / names[kind.stem]).mkdir()  # reserve it before choosing the next one
    for kind in kinds:
        reads = readable(workspace, kind.reads_mesh)
        assert len(reads) == kind.reads_mesh, f"the mesh has fewer than {kind.reads_mesh} readable public products"
        reads += [(f"{names[stem]}.records", "id") for stem in kind.reads_generated]
        _write(root, _domain(names[kind.stem], kind, reads))
    with open(root / "workspace.yaml", "a") as out:
        for name in names.values():
            out.write(f"  - python_module:\n      module_name: domains.{name}.definitions\n"
                      f"      location_name: {name}\n      working_directory: .\n")
    return list(names.values())


def _domain(name: str, kind: Kind, reads: list[tuple[str, str]]) -> _Domain:
    domain = _Domain(name, kind)
    owner = f"team:{name}" if kind.teams else f"{name}@example.com"
    source, own = kind.products
    common = f"domain={name!r}, owners=[{owner!r}], version=\"1.0.0\", access={kind.access!r}"
    for i in range(kind.sources):
        product = source if i == 0 else f"{source}_{i + 1}"
        domain.contracts.append(
            f"class {product.title().replace('_', '')}Contract(pa.DataFrameModel):\n"
            '    id: Series[int] = pa.Field(unique=True, ge=1, description="Record number, from 1.")\n'
            '    value: Series[float] = pa.Field(nullable=True, description="A measured value; null if not measured.")\n'
            '    label: Series[str] = pa.Field(description="What was measured.")\n\n'
            "    class Config:\n        strict = True\n        coerce = True\n")
        domain.suites.append(f'{product.upper()} = [Expectation("ExpectColumnValuesToNotBeNull", column="id")]\n')
        domain.products.append(
            f"@data_product({common},\n"
            f'              description="One row per record of data/{product}.csv, which the domain ships.",\n'
            f"              contract=contracts.{product.title().replace('_', '')}Contract, suite=suites.{product.upper()})\n"
            f"def {product}() -> pd.DataFrame:\n"
            f'    return pd.read_csv(package_data_path("domains.{name}", "data", "{product}.csv"))\n')
        domain.names.append(product)
    counted = ([(f"{name}.{source}", "id")] if kind.own_consumer else []) + reads
    for i, (upstream, column) in enumerate(counted):
        product = own if i == 0 and kind.own_consumer else upstream.replace('.', '_')
        contract = product.title().replace("_", "") + "Contract"
        domain.contracts.append(
            f"class {contract}(pa.DataFrameModel):\n"
            f'    rows: Series[int] = pa.Field(ge=0, description="Rows of {upstream}.")\n'
            f'    distinct: Series[int] = pa.Field(ge=0, description="Distinct values of its column {column}.")\n\n'
            "    class Config:\n        strict = True\n        coerce = True\n")
        domain.suites.append(f'{product.upper()} = [Expectation("ExpectColumnValuesToNotBeNull", column="rows")]\n')
        domain.products.append(
            f"@data_product({common},\n"
            f'              description="One row per run: how many rows {upstream} has, and distinct {column} values.",\n'
            f"              contract=contracts.{contract}, suite=suites.{product.upper()},\n"
            f"              inputs={{\"upstream\": Input({upstream!r}, columns=[{column!r}], expectations=[\n"
            f"                  Expectation(\"ExpectColumnToExist\", column={column!r})])}})\n"
            f"def {product}(upstream: pd.DataFrame) -> pd.DataFrame:\n"
            f"    return pd.DataFrame({{\"rows\": [len(upstream)], \"distinct\": [upstream[{column!r}].nunique()]}})\n")
        domain.names.append(product)
    return domain


def _write(root: Path, domain: _Domain) -> None:
    folder, kind, name = root / "domains" / domain.name, domain.kind, domain.name
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(f'"""A generated {kind.stem} domain."""\n')
    (folder / "contracts.py").write_text("import pandera.pandas as pa\nfrom pandera.typing import Series\n\n\n"
                                         + "\n\n".join(domain.contracts))
    (folder / "suites.py").write_text("from mesh_core import Expectation\n\n" + "".join(domain.suites))
    (folder / "products.py").write_text(
        f"import pandas as pd\n\nfrom domains.{name} import contracts, suites\n"
        "from mesh_core import Expectation, Input, data_product, package_data_path\n\n\n" + "\n\n".join(domain.products))
    for product in domain.names[: kind.sources]:
        (folder / "data" / f"{product}.csv").write_text(
            "id,value,label\n" + "".join(f"{i},{'' if i == 3 else i * 1.5},item {i}\n" for i in range(1, 6)))
    settings = "".join([f", teams=['team:{name}']" if kind.teams else "",
                        ", cadence=Cadence('0 6 * * *', timezone='UTC')" if kind.cadence else ""])
    (folder / "definitions.py").write_text(
        f"from domains.{name}.products import {', '.join(domain.names)}\nfrom mesh_core import Cadence, domain_definitions\n\n"
        f"defs = domain_definitions({name!r}, [{', '.join(domain.names)}]{settings})\n")
