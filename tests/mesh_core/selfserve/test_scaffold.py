import pytest

from mesh_core import MeshError
from mesh_core.selfserve.scaffold import _delimiter, _with_entry


def test_a_new_workspace_entry_keeps_the_files_comments_order_and_line_endings(tmp_path):
    path = tmp_path / "workspace.yaml"
    text = ("# the mesh\r\nload_from:\r\n  - python_module:\r\n      module_name: domains.a.definitions\r\n"
            "      location_name: a   # first\r\n      working_directory: .\r\n# the end\r\n")
    path.write_bytes(text.encode())
    updated = _with_entry(path, "b")
    assert updated.startswith(text.split("# the end")[0]) and updated.endswith("# the end\r\n")
    assert "  - python_module:\r\n      module_name: domains.b.definitions\r\n      location_name: b\r\n" in updated
    assert "\n" not in updated.replace("\r\n", "")


def test_a_workspace_mesh_cannot_extend_safely_says_what_to_add(tmp_path):
    path = tmp_path / "workspace.yaml"
    path.write_text("{load_from: [{python_module: {module_name: domains.a.definitions, location_name: a}}]}\n")
    with pytest.raises(MeshError, match="add this entry under load_from by hand"):
        _with_entry(path, "b")


def test_the_csv_delimiter_is_sniffed(tmp_path):
    (tmp_path / "semi.csv").write_text("a;b;c\n1;x;2,5\n2;y;3,5\n")
    (tmp_path / "comma.csv").write_text("a,b\n1,2\n")
    assert _delimiter(tmp_path / "semi.csv") == ";" and _delimiter(tmp_path / "comma.csv") == ","


def test_an_import_joins_the_modules_import_line(tmp_path):
    from mesh_core.selfserve.scaffold import _append

    path = tmp_path / "products.py"
    path.write_text('"""Products."""\n\nimport pandas as pd\n\nfrom mesh_core import data_product, package_data_path\n')
    text = _append(path, "x = 1\n", ["from mesh_core import Input", "import pandas as pd", "from domains.d import contracts"])
    assert text == ('"""Products."""\n\nfrom domains.d import contracts\n\nimport pandas as pd\n\n'
                    "from mesh_core import Input, data_product, package_data_path\n\n\nx = 1\n")


# -- `mesh new product --engine` ---------------------------------------------------------------

# The kinds of column pandas and Polars read differently from a CSV: text timestamps, booleans, integers with a gap.
SIGHTINGS = ("Sighting ID;day;seen;Wing Span;ringed;birds\n1;2024-01-05;2024-01-05T10:15:00Z;1.5;True;3\n"
             "2;2024-01-06;2024-01-06T11:40:00Z;2.5;False;\n3;2024-01-07;2024-01-07T12:05:00Z;3.0;True;12\n")


@pytest.fixture
def birds(tmp_path):
    """A one-domain mesh (the `mesh new domain` package) in tmp_path, and a `mesh` that runs in it."""
    from mesh_core.selfserve.scaffold import domain_package
    from tests.support import make_dagster_home, run_mesh

    root = tmp_path / "mesh"
    for file, data in domain_package("birds", "team:birds", None, "domains.birds").items():
        (root / "domains" / "birds" / file).parent.mkdir(parents=True, exist_ok=True)
        (root / "domains" / "birds" / file).write_bytes(data)
    (root / "domains" / "__init__.py").write_text("")
    (root / "workspace.yaml").write_text("load_from:\n  - python_module:\n      module_name: domains.birds.definitions\n"
                                         "      location_name: birds\n      working_directory: .\n")
    home = make_dagster_home(tmp_path)
    return root, lambda *args: run_mesh(*args, "-w", str(root / "workspace.yaml"), home=home, cwd=root)


# What each scaffolded product computes, run in its engine the way a step runs it (inputs handed over,
# the output streamed and cast to the contract's types) and held against its own contract in that
# engine: the scaffold is a product that works, not just one that imports.
ENGINE_RUN = """
import json
import pandas as pd
import polars as pl
from domains.birds import products
from mesh_core.declare.product import DataProduct
from mesh_core.run.engines import EngineSession
from mesh_core.run.validation.contract import run_contract
from mesh_core.run.validation.engine_contract import conform, run_contract_polars

records = pd.read_csv("domains/birds/data/records.csv")
found = {}
for product in (value for value in vars(products).values() if isinstance(value, DataProduct)):
    with EngineSession(product) as session:
        if product.sql is not None:
            output = session.run_sql({"source": session.duckdb.from_df(records)})
        elif product.inputs:
            output = product.fn(source=pl.from_pandas(records).lazy() if product.engine.value == "polars" else records)
        else:
            output = product.fn()
        if isinstance(output, pd.DataFrame):
            outcome, _ = run_contract(product.contract, output, min_rows=1)
        else:
            table = conform(session.stream(output), product.contract, product.ref).read_all()
            outcome = run_contract_polars(product.contract, pl.from_arrow(table).lazy(), min_rows=1)
        rows = len(output) if isinstance(output, pd.DataFrame) else table.num_rows
    assert outcome.passed, (product.ref, outcome.description)
    found[product.name] = [product.engine.value, product.sql_file and product.sql_file.rsplit("/", 1)[-1], rows]
print(json.dumps(found))
"""


def test_new_product_scaffolds_each_engine_as_a_product_that_loads_lints_and_meets_its_contract(birds, tmp_path):
    import json
    import subprocess
    import sys

    root, mesh = birds
    ran = mesh("materialize", "-d", "birds")  # birds.records, which --from birds.records reads
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (tmp_path / "sightings.csv").write_text(SIGHTINGS)
    for args in (["sightings", "--from", str(tmp_path / "sightings.csv"), "--engine", "polars"],
                 ["nests", "--engine", "polars"]):
        made = mesh("new", "product", "birds", *args)  # each is loaded in a fresh interpreter, or taken back
        assert made.returncode == 0, made.stdout + made.stderr
    for args in (["by_name", "--from", "birds.records", "--engine", "sql"],
                 ["by_amount", "--from", "birds.records", "--engine", "polars"],
                 ["copied", "--from", "birds.records"]):
        made = mesh("new", "product", "birds", *args)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "wrote domains/birds/by_name.sql" in made.stdout or args[0] != "by_name", made.stdout

    products = (root / "domains" / "birds" / "products.py").read_text()
    assert "import pandas as pd\nimport polars as pl\n" in products  # among the module's imports, in order
    assert "def sightings() -> pl.LazyFrame:\n    return (\n        pl.scan_csv(" in products
    assert ".rename({'Sighting ID': 'sighting_id', 'Wing Span': 'wing_span'})" in products
    assert "pl.col('seen').str.to_datetime(time_zone='UTC')" in products
    assert "def by_amount(source: pl.LazyFrame) -> pl.LazyFrame:" in products
    assert "    sql='by_name.sql'," in products and "def by_name(source):\n" in products
    assert "def copied(source: pd.DataFrame) -> pd.DataFrame:" in products
    assert "from source" in (root / "domains" / "birds" / "by_name.sql").read_text()

    lint = mesh("lint")
    assert lint.returncode == 0 and "0 violation(s)" in lint.stdout, lint.stdout + lint.stderr
    run = subprocess.run([sys.executable, "-c", ENGINE_RUN], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout) == {
        "records": ["pandas", None, 3], "sightings": ["polars", None, 3], "nests": ["polars", None, 3],
        "by_name": ["duckdb", "by_name.sql", 3], "by_amount": ["polars", None, 3], "copied": ["pandas", None, 3]}

    # The tests the scaffold wrote, one per product (run_product: a real materialization), pass in every engine.
    (root / "tests" / "__init__.py").write_text("")  # tests.domains, as in a mesh repository (not a second `domains`)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                            "tests/domains"], cwd=root, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0 and "5 passed" in tests.stdout, tests.stdout[-4000:] + tests.stderr[-2000:]


def test_new_product_refuses_an_unknown_engine_and_sql_with_nothing_to_query_and_changes_nothing(birds):
    root, mesh = birds
    before = snapshot(root)
    unknown = mesh("new", "product", "birds", "nests", "--engine", "spark")
    assert unknown.returncode == 2
    assert "argument --engine: invalid choice: 'spark' (choose from pandas, polars, sql)" in unknown.stderr.replace("'pandas', 'polars', 'sql'", "pandas, polars, sql"), unknown.stderr
    for args, said in ((["--engine", "sql"], "got no --from"),
                       (["--engine", "sql", "--from", "domains/birds/data/records.csv"], "got --from domains/birds/data/records.csv")):
        refused = mesh("new", "product", "birds", "nests", *args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "`--engine sql` needs --from domain.product" in refused.stderr and said in refused.stderr, refused.stderr
    assert snapshot(root) == before


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_scaffolded_query_runs_over_columns_named_like_sql_keywords_or_not_in_snake_case():
    import duckdb

    from mesh_core.selfserve.scaffold import _query

    query = _query("d", "x", "d.y", ["order", "name", "Weird Col", "left"], {"Weird Col": "weird_col"})
    con = duckdb.connect()
    con.execute('create table source as select 1 as "order", \'a\' as name, 2 as "Weird Col", 3 as "left"')
    relation = con.sql(query)
    assert relation.columns == ["order", "name", "weird_col", "left"] and relation.fetchall() == [(1, "a", 2, 3)]
