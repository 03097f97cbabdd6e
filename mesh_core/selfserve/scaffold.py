"""`mesh new domain` and `mesh new product`: the standard layout, written for a domain engineer.

A new domain is a folder under `domains/` with a source product reading a data file the
domain ships (`data/`, beside its code), its contract, suite, definitions, a test using
`mesh_core.run_product`, and its entry in `workspace.yaml` (comments and order kept).
A new product `--from` a CSV or Parquet file, or from a published product, starts with a
contract and suite inferred from that data. `--engine` picks how it is written: pandas (the
default), Polars (a LazyFrame product, its input a LazyFrame) or SQL (a query in a .sql file beside
products.py, over the products it reads). Scaffolded products are drafts: they run, but promise
nothing (no contract snapshot) until their TODOs are written and they are made active. Everything
is checked before anything is written; if writing fails half-way, what was written is taken back.
"""

from __future__ import annotations

import ast
import csv
import keyword
import re
from pathlib import Path
from typing import Sequence

import pandas as pd
import yaml

from mesh_core.declare.names import RESERVED_DOMAINS, is_valid_name
from mesh_core.errors import MeshError
from mesh_core.selfserve.infer import InferredColumn, contract_source, infer, suite_source
from mesh_core.selfserve.plan import Plan

ENGINES = ("pandas", "polars", "sql")  # how `mesh new product --engine` writes a product
SAMPLE = pd.DataFrame({"record_id": [1, 2, 3], "name": ["first", "second", "third"], "amount": [10.5, 20.0, 7.25]})


def plan_domain(workspace_path: Path, name: str, owner: str, description: str | None = None) -> Plan:
    root = workspace_path.parent
    folder = root / "domains" / name
    _check_name("domain", name)
    _check_owner(owner)
    if folder.exists():
        raise MeshError(f"domains/{name} already exists; choose another domain name or add products to it with "
                        f"`mesh new product {name} <name>`.")
    entries = _entries(workspace_path)
    if name in entries:
        raise MeshError(f"{workspace_path.name} already lists a code location named '{name}'.")
    plan = Plan()
    for file, data in domain_package(name, owner, description, f"domains.{name}").items():
        plan.create[folder / file] = data
    plan.create[root / "tests" / "domains" / f"test_{name}.py"] = _test(name, FIRST_PRODUCT, source=True).encode()
    if not (root / "tests" / "domains" / "__init__.py").exists():
        plan.create[root / "tests" / "domains" / "__init__.py"] = b""
    plan.change[workspace_path] = _with_entry(workspace_path, name)
    plan_deployment(plan, workspace_path, entries_with_modules(workspace_path) + [(name, f"domains.{name}.definitions")])
    return plan


FIRST_PRODUCT = "records"  # a new domain's placeholder source product


def domain_package(name: str, owner: str, description: str | None, package: str) -> dict[str, bytes]:
    """A new domain's package in the standard layout, {path inside it: content}; `package` is the
    module it is imported as (`domains.<name>` in a mesh repository, `<name>` in a repository of its own)."""
    product = FIRST_PRODUCT
    summary = description or f"The {name} domain."
    files = {
        "__init__.py": f"{summary!r}\n",
        "contracts.py": _contracts_header(name) + "\n\n" + contract_source("RecordsContract", infer(SAMPLE)).replace(
            "TODO: what this column means.", "TODO: describe this column."),
        "suites.py": _suites_header(name) + "\n\n" + suite_source(product.upper(), infer(SAMPLE)),
        "products.py": _products_header(name, package) + _source_product(name, product, "RecordsContract",
                                                                          f"data/{product}.csv", owner, {}, package=package),
        "definitions.py": (f'"""The {name} domain\'s code location."""\n\nfrom {package}.products import {product}\n'
                           f"from mesh_core import domain_definitions\n\n"
                           f'defs = domain_definitions("{name}", [{product}]{_teams(owner)})\n'),
    }
    return {**{file: text.encode() for file, text in files.items()},
            f"data/{product}.csv": SAMPLE.to_csv(index=False).encode()}


def plan_product(workspace, name_domain: str, name: str, *, source: str | None = None, owner: str | None = None,
                 read_product=None, engine: str = "pandas") -> Plan:
    """`read_product(ref)` returns a published product's frame (for `--from domain.product`);
    `engine` is one of ENGINES."""
    from mesh_core.declare.inputs import Input

    if engine not in ENGINES:
        raise MeshError(f"engine {engine!r} is not one Mesh scaffolds: choose {', '.join(ENGINES)}.")

    location = workspace.location(name_domain)  # unknown domain: did-you-mean
    root = workspace.path.parent
    folder = root / "domains" / name_domain
    products_py = folder / "products.py"
    _check_name("product", name, _module_names(products_py, folder / "contracts.py", folder / "suites.py")
                - {ref.product for ref in location.products})
    if not products_py.exists() or not (folder / "definitions.py").exists():
        raise MeshError(f"domains/{name_domain} does not have the standard layout (products.py, definitions.py); "
                        "add the product there by hand.")
    if any(ref.product == name for ref in location.products):
        raise MeshError(f"{name_domain}.{name} already exists; choose another product name.")
    if engine == "sql" and (source is None or Path(source).suffix.lower() in (".csv", ".parquet") or Path(source).exists()):
        raise MeshError(f"a SQL product queries the products it reads, so `--engine sql` needs --from domain.product "
                        f"(got {'no --from' if source is None else '--from ' + source}). To publish a file, scaffold a "
                        f"source product first (`mesh new product {name_domain} <name> --from FILE --engine polars`), "
                        "then the SQL product --from it.")
    query_file = folder / f"{name}.sql"
    if engine == "sql" and query_file.exists():
        raise MeshError(f"domains/{name_domain}/{name}.sql already exists; choose another product name or move that file.")
    owners = owner
    if owners is None and location.products:  # the domain's own owners, as its first product names them
        owners = next(iter(next(iter(location.products.values())).owners), None)
    if owners is None:
        raise MeshError(f"domain {name_domain} has no product to take owners from; pass --owner team:<name>.")
    _check_owner(owners)
    plan = Plan()
    contract = "".join(part.title() for part in name.split("_")) + "Contract"
    upstream = None
    sep = ","
    if source is None:
        frame, data_file = SAMPLE, f"data/{name}.csv"
        plan.create[folder / data_file] = SAMPLE.to_csv(index=False).encode()
    elif Path(source).suffix.lower() in (".csv", ".parquet") or Path(source).exists():
        sep = ","
        path = Path(source)
        if not path.is_file():
            raise MeshError(f"--from {source}: no such file.")
        if path.suffix.lower() not in (".csv", ".parquet"):
            raise MeshError(f"--from {source}: Mesh infers contracts from .csv or .parquet files.")
        sep = _delimiter(path) if path.suffix.lower() == ".csv" else ","
        try:
            frame = pd.read_csv(path, sep=sep) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        except Exception as exc:
            raise MeshError(f"--from {source}: cannot read it as {path.suffix[1:]}: {exc}") from None
        if frame.empty or not len(frame.columns):
            raise MeshError(f"--from {source}: the file holds no rows; a contract is inferred from real data.")
        data_file = f"data/{name}{path.suffix.lower()}"
        plan.create[folder / data_file] = path.read_bytes()
    else:
        try:
            upstream = Input(source)
        except ValueError as exc:
            raise MeshError(f"--from {source}: not a .csv/.parquet file nor a product: {exc}") from None
        if upstream.ref not in workspace.products():
            from mesh_core.governance.workspace import did_you_mean

            raise MeshError(f"--from {source}: no domain publishes {upstream.ref}"
                            f"{did_you_mean(str(upstream.ref), [str(r) for r in workspace.products()])}.")
        frame, data_file = read_product(upstream.ref), None
    try:
        inference = infer(frame)
    except ValueError as exc:
        raise MeshError(f"--from {source}: {exc}") from None
    plan.warnings += inference.warnings
    suite = name.upper()
    descriptions = None
    if upstream is not None:  # what the producer says its columns mean holds for the copies too
        from mesh_core.declare.contract import specs_from_metadata

        upstream_spec = workspace.products()[upstream.ref][1]
        descriptions = {column["name"]: column["description"]
                        for column in specs_from_metadata(upstream_spec.metadata)}
    changes = {
        folder / "contracts.py": _append(folder / "contracts.py", contract_source(contract, inference, descriptions),
                                         ["import pandas as pd", "import pandera.pandas as pa", "from pandera.typing import Series"]),
        folder / "suites.py": _append(folder / "suites.py", suite_source(suite, inference), ["from mesh_core import Expectation"]),
    }
    imports = [f"from domains.{name_domain} import contracts, suites", "from mesh_core import data_product, package_data_path",
               "import pandas as pd"]
    if engine == "polars":
        imports.append("import polars as pl")
    if upstream is None:
        body = _source_product(name_domain, name, contract, data_file, owners, inference.renames, sep=sep,
                               timestamps=[column for column in inference.columns if column.from_text], engine=engine)
    else:
        columns = [str(column) for column in frame.columns]
        body = _derived_product(name_domain, name, contract, str(upstream.ref), owners, inference.renames, columns,
                                engine=engine)
        imports.append("from mesh_core import Input")
        if engine == "sql":
            plan.create[query_file] = _query(name_domain, name, str(upstream.ref), columns, inference.renames).encode()
    changes[products_py] = _append(products_py, body, imports)
    changes[folder / "definitions.py"] = _register(folder / "definitions.py", name_domain, name)
    plan.change.update(changes)
    test = root / "tests" / "domains" / f"test_{name_domain}__{name}.py"
    if not test.exists():
        plan.create[test] = _test(name_domain, name, source=upstream is None, upstream=upstream,
                                  sample=frame.head(5)).encode()
        if not (root / "tests" / "domains" / "__init__.py").exists():
            plan.create[root / "tests" / "domains" / "__init__.py"] = b""
    return plan


# -- checks ----------------------------------------------------------------------------

def _check_name(kind: str, name: str, taken: set[str] = frozenset()) -> None:
    example = "penguins" if kind == "domain" else "observations"
    if not is_valid_name(name):
        raise MeshError(f"{name!r} is not a valid {kind} name: use lower snake case, a letter first, at most 63 "
                        f"characters (e.g. {example}).")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise MeshError(f"{name!r} is a Python keyword, so it cannot name a {kind}: choose another (e.g. {example}).")
    if kind == "domain" and name in RESERVED_DOMAINS:
        raise MeshError(f"the domain name {name!r} is reserved (a schema Mesh keeps in every domain's store); "
                        f"reserved: {', '.join(sorted(RESERVED_DOMAINS))}.")
    if name in taken:
        raise MeshError(f"{name!r} is already a name in the domain's modules (an import, a contract or a suite); "
                        "a product of that name would replace it: choose another.")


def _module_names(*paths: Path) -> set[str]:
    """Top-level names the domain's modules define or import, which a new product must not shadow."""
    names = {"pd", "pl", "pa", "Series", "contracts", "suites", "data_product", "package_data_path", "Input", "SLO"}
    for path in paths:
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError):
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            elif isinstance(node, ast.Assign):
                names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return names


def _check_owner(owner: str) -> None:
    from dagster._core.definitions.utils import is_valid_owner

    if not isinstance(owner, str) or not is_valid_owner(owner) or owner.strip() != owner:
        raise MeshError(f"owner {owner!r} is not an owner: write an email address (ana@example.com) or team:<name>.")


def _entries(workspace_path: Path) -> list[str]:
    return [name for name, _ in entries_with_modules(workspace_path)]


def entries_with_modules(workspace_path: Path) -> list[tuple[str, str]]:
    from mesh_core.governance.workspace import read_entries

    return [(entry.name, entry.module) for entry in read_entries(workspace_path)]


def plan_deployment(plan: Plan, workspace_path: Path, locations: list[tuple[str, str]]) -> None:
    """Keep the Helm values' user deployments in step with the workspace, when there is such a file
    (one Mesh cannot rewrite safely is left as it is, with a warning; lint then says so too)."""
    from mesh_core.governance.deployment import derived_values

    try:
        path, old, new = derived_values(workspace_path, locations)
    except MeshError as exc:
        plan.warnings.append(f"the Helm values were not updated: {exc}")
        return
    if old is not None and new != old:
        plan.change[path] = new


def _teams(owner: str) -> str:
    return f", teams=[{owner!r}]" if owner.startswith("team:") else ""


# -- text -------------------------------------------------------------------------------

def _with_entry(workspace_path: Path, name: str) -> str:
    """workspace.yaml with one more entry after the last one, in the file's own style."""
    text = workspace_path.read_bytes().decode("utf-8")
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("- python_module")]
    if not starts:
        raise MeshError(f"{workspace_path} is not written one `- python_module:` entry per item, so Mesh cannot add to "
                        f"it safely; add this entry under load_from by hand, then run `mesh contracts update`:\n"
                        f"  - python_module: {{module_name: domains.{name}.definitions, location_name: {name}, "
                        "working_directory: .}")
    last = max(starts)
    indent = lines[last][: len(lines[last]) - len(lines[last].lstrip())]
    end = last + 1
    while end < len(lines) and lines[end].strip() and (lines[end].startswith(indent + " ") and not lines[end].lstrip().startswith("- ")):
        end += 1
    if "{" in lines[last]:
        block = [f"{indent}- python_module: {{module_name: domains.{name}.definitions, location_name: {name}, working_directory: .}}\n"]
    else:
        inner = indent + "    "
        block = [f"{indent}- python_module:\n", f"{inner}module_name: domains.{name}.definitions\n",
                 f"{inner}location_name: {name}\n", f"{inner}working_directory: .\n"]
    block = [line.replace("\n", newline) for line in block]
    if end == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    new = "".join(lines[:end] + block + lines[end:])
    before = yaml.safe_load(text)["load_from"]
    after = yaml.safe_load(new)["load_from"]
    if after[:-1] != before or after[-1]["python_module"]["location_name"] != name:
        raise MeshError(f"Could not add '{name}' to {workspace_path} safely; add this entry by hand:\n" + "".join(block))
    return new


def _append(path: Path, block: str, imports: list[str]) -> str:
    text = path.read_text()
    missing = []
    for line in imports:
        if line in text:
            continue
        merged = _with_import(text, line)
        if merged is None:
            missing.append(line)
        else:
            text = merged
    if missing:
        text = "\n".join(missing) + "\n" + text if not text.startswith('"""') else _after_docstring(text, missing)
    return text.rstrip("\n") + "\n\n\n" + block


def _with_import(text: str, line: str) -> str | None:
    """`from m import x` joined to the module's one-line import, if the text has one; `import m` put
    among the module's `import ...` lines, in order (None if neither fits)."""
    if line.startswith("import "):
        plain = list(re.finditer(r"^import [^\n]+$", text, flags=re.M))
        if not plain:
            return None
        after = [match for match in plain if match[0] < line]
        at = after[-1].end() + 1 if after else plain[0].start()
        return text[:at] + line + "\n" + text[at:]
    if not line.startswith("from "):
        return None
    module, _, names = line.removeprefix("from ").partition(" import ")
    have = re.search(rf"^from {re.escape(module)} import ([^(\n#]+)$", text, flags=re.M)
    if have is None:
        return None
    present = [name.strip() for name in have[1].split(",")]
    wanted = [name.strip() for name in names.split(",") if name.strip() not in present]
    joined = ", ".join(sorted(present + wanted, key=lambda name: (name[:1].islower(), name)))  # classes first, as isort
    return text[:have.start(1)] + joined + text[have.end(1):]


def _after_docstring(text: str, lines: list[str]) -> str:
    end = text.index('"""', 3) + 3
    return text[:end] + "\n\n" + "\n".join(lines) + text[end:]


def _register(definitions: Path, domain: str, name: str) -> str:
    text = definitions.read_text()
    call = f'domain_definitions("{domain}", ['
    if call not in text:
        raise MeshError(f"{definitions} does not call {call}...]); add {name} to its products by hand.")
    text = text.replace(call, f"{call}{name}, ", 1)
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(f"from domains.{domain}.products import ") and "(" not in line:
            lines[i] = line.rstrip("\n") + f", {name}\n"
            return "".join(lines)
    return _after_docstring(text, [f"from domains.{domain}.products import {name}"]) if text.startswith('"""') \
        else f"from domains.{domain}.products import {name}\n" + text


def _contracts_header(domain: str) -> str:
    return (f'"""What the {domain} domain promises about the data it publishes."""\n\n'
            "import pandas as pd\nimport pandera.pandas as pa\nfrom pandera.typing import Series")


def _suites_header(domain: str) -> str:
    return (f'"""Great Expectations suites of the {domain} domain (GX is imported only when a run validates)."""\n\n'
            "from mesh_core import Expectation")


def _products_header(domain: str, package: str) -> str:
    return (f'"""The {domain} domain\'s data products."""\n\nimport pandas as pd\n\n'
            f"from {package} import contracts, suites\nfrom mesh_core import data_product, package_data_path\n\n\n")


def _delimiter(path: Path) -> str:
    """The CSV's delimiter, sniffed from its start: ',' unless the file clearly uses ';', tab or '|'."""
    try:
        sample = path.read_bytes()[:16384].decode("utf-8", errors="replace")
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except (csv.Error, OSError):
        return ","


def _draft(domain: str, name: str, contract: str, owner: str, description: str, extra: str = "") -> str:
    """The @data_product(...) of a draft: no contract snapshot, no promise, until its TODOs are done and it is made active."""
    return (f"@data_product(\n    domain={domain!r},\n    description=\"{description}\",\n"
            f"    owners=[{owner!r}],\n    contract=contracts.{contract},\n    suite=suites.{name.upper()},\n"
            f'    version="1.0.0",\n    status="draft",  # make it active once the TODOs are done\n{extra})\n')


def _source_product(domain: str, name: str, contract: str, data_file: str, owner: str, renames: dict,
                    sep: str = ",", timestamps: Sequence[InferredColumn] = (), package: str | None = None,
                    engine: str = "pandas") -> str:
    """A draft source product reading a data file the domain ships: whole in pandas, lazily in Polars."""
    path = f"package_data_path(\"{package or 'domains.' + domain}\", *{tuple(data_file.split('/'))!r})"
    head = _draft(domain, name, contract, owner,
                  f"One row per record of {data_file}, which the domain ships. TODO: name the grain.")
    if engine == "polars":
        reader = "scan_parquet" if data_file.endswith(".parquet") else "scan_csv"
        options = f", separator={sep!r}" if sep != "," else ""
        steps = [f".rename({renames!r})"] if renames else []
        if timestamps:  # the file holds them as text
            steps.append(".with_columns(" + ", ".join(
                f"pl.col({column.name!r}).str.to_datetime("
                f"{'time_zone=' + repr('UTC') if column.annotation.startswith('pd.DatetimeTZDtype') else ''})"
                for column in timestamps) + ")")
        chain = "".join(f"\n        {step}" for step in steps)
        body = (f"    return pl.{reader}({path}{options}){chain}\n" if not chain else
                f"    return (\n        pl.{reader}({path}{options}){chain}\n    )\n")
        return head + f"def {name}() -> pl.LazyFrame:\n" + body
    reader = "read_parquet" if data_file.endswith(".parquet") else "read_csv"
    options = f", sep={sep!r}" if sep != "," else ""
    rename = f".rename(columns={renames!r})" if renames else ""
    read = f"pd.{reader}({path}{options}){rename}"
    if timestamps:  # the file holds them as text
        body = f"    frame = {read}\n" + "".join(
            f"    frame[{column.name!r}] = pd.to_datetime(frame[{column.name!r}], format=\"ISO8601\""
            f"{', utc=True' if column.annotation.startswith('pd.DatetimeTZDtype') else ''})\n" for column in timestamps
        ) + "    return frame\n"
    else:
        body = f"    return {read}\n"
    return head + f"def {name}() -> pd.DataFrame:\n" + body


def _derived_product(domain: str, name: str, contract: str, upstream: str, owner: str, renames: dict,
                     columns: list[str], engine: str = "pandas") -> str:
    inputs = f"    inputs={{\"source\": Input({upstream!r}, columns={columns!r})}},\n"
    if engine == "sql":
        return (_draft(domain, name, contract, owner, f"One row per row of {upstream}. TODO: say what it adds.",
                       inputs + f"    sql={name + '.sql'!r},  # beside this file; its relations are the inputs\n")
                + f"def {name}(source):\n"
                  f'    """Runs in DuckDB: {name}.sql, where `source` is {upstream}."""\n')
    head = _draft(domain, name, contract, owner, f"One row per row of {upstream}. TODO: say what it adds.", inputs)
    if engine == "polars":
        rename = f".rename({renames!r})" if renames else ""
        return head + (f"def {name}(source: pl.LazyFrame) -> pl.LazyFrame:\n"
                       f"    return source{rename}  # TODO: the transform\n")
    rename = f".rename(columns={renames!r})" if renames else ""
    return head + (f"def {name}(source: pd.DataFrame) -> pd.DataFrame:\n"
                   f"    return source{rename}  # TODO: the transform\n")


def _query(domain: str, name: str, upstream: str, columns: list[str], renames: dict) -> str:
    """A draft SQL product's query (DuckDB dialect): its input's columns, renamed as the contract names them."""
    import duckdb

    # Quoted unless a plain name DuckDB takes as a column bare (`order`, `group`, `left` are keywords).
    keywords = {word for (word,) in duckdb.sql("select keyword_name from duckdb_keywords() "
                                               "where keyword_category != 'unreserved'").fetchall()}

    def quoted(column: str) -> str:
        return column if re.fullmatch(r"[a-z_][a-z0-9_]*", column) and column not in keywords else \
            '"' + column.replace('"', '""') + '"'

    selected = ",\n       ".join(quoted(c) + (f" as {renames[c]}" if c in renames else "") for c in columns)
    return (f"-- {domain}.{name}: one row per row of {upstream}. TODO: the transform.\n"
            f"-- DuckDB SQL; its relations are the product's inputs: source ({upstream}).\n"
            f"select {selected}\nfrom source\n")


def _test(domain: str, name: str, *, source: bool, upstream=None, sample: pd.DataFrame | None = None,
          package: str | None = None) -> str:
    package = package or f"domains.{domain}"
    head = (f'"""Tests of {domain}.{name}, with mesh_core.run_product."""\n\n'
            f"from {package}.products import {name}\nfrom mesh_core import run_product\n")
    if source:
        return head + (f"\n\ndef test_{name}_publishes_its_data_file():\n    result = run_product({name})\n"
                       "    assert result.published, result.message\n    assert len(result.output) > 0\n"
                       "    assert all(check.passed for check in result.checks.values()), result.checks\n")
    records = sample.to_json(orient="records", date_format="iso", date_unit="us")
    dtypes = {str(column): str(dtype) for column, dtype in sample.dtypes.items()}
    return (f'"""Tests of {domain}.{name}, with mesh_core.run_product."""\n\nimport json\n\nimport pandas as pd\n\n'
            f"from {package}.products import {name}\nfrom mesh_core import run_product\n\n"
            f"# A sample of {upstream.ref} when this product was scaffolded, typed as it publishes it.\n"
            f"SAMPLE = {records!r}\nDTYPES = {dtypes!r}\n\n\n"
            f"def test_{name}_publishes_from_its_input():\n"
            f"    source = pd.DataFrame(json.loads(SAMPLE), columns=list(DTYPES)).astype(DTYPES)\n"
            f"    result = run_product({name}, inputs={{\"source\": source}})\n"
            "    assert result.published, result.message\n"
            "    assert all(check.passed for check in result.checks.values()), result.checks\n"
            "    # Then what the transform promises, e.g. assert result.output[\"...\"].notna().all()\n")
