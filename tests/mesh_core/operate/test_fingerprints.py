"""What `mesh preview` counts as a product's code."""

from __future__ import annotations

import importlib.util

MODULE = '''
import pandera.pandas as pa
from pandera.typing import Series

from mesh_core import Expectation, data_product


class Contract(pa.DataFrameModel):
    flights: Series[int] = pa.Field(description="Flights.")


@data_product(domain="d", description="One row per day.", owners=["team:d"], contract=Contract, version="1.0.0",
              suite=[Expectation("ExpectColumnValuesToNotBeNull", column="flights")], inputs={"f": "e.f"},
              sql="daily.sql")
def daily(f):
    """Written in SQL: daily.sql."""
'''


def load(folder, query: str):
    (folder / "products.py").write_text(MODULE)
    (folder / "daily.sql").write_text(query)
    spec = importlib.util.spec_from_file_location(f"fingerprint_case_{abs(hash(query))}", folder / "products.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.daily


def test_a_sql_products_source_is_its_query_so_a_change_to_its_sql_file_is_a_change_to_the_product(tmp_path):
    from mesh_core.operate.fingerprints import _source, product_source

    one = load(tmp_path, "select count(*) as flights from f\n")
    other = load(tmp_path, "select count(*) filter (where true) as flights from f\n")
    assert _source(one.fn) == _source(other.fn)  # the Python alone does not tell them apart
    assert product_source(one) != product_source(other)
    assert "select count(*) as flights from f" in product_source(one)

