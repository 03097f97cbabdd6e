"""The generated mesh of bench/synthetic.py without a framework: the per-product baseline.

For each product, in domain order: the same frame (or the upstream product read back from its
Delta table), the same Pandera contract and GX expectation (one GX context for the script), the
same writes (a Delta table, a table in the domain's DuckDB file).

    python bench/baseline_synthetic.py OUT_DIR DOMAINS PRODUCTS ROWS   (PYTHONPATH: the generated root)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from gen.contract import ItemsContract, items


def main(out: Path, domains: int, products: int, rows: int) -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("baseline")
    out.mkdir(parents=True, exist_ok=True)
    for d in range(domains):
        domain = f"domain_{d:02d}"
        (out / domain).mkdir(exist_ok=True)
        with duckdb.connect(str(out / domain / "warehouse.duckdb")) as con:
            for p in range(products):
                name = f"product_{p:02d}"
                if d and p == 0:
                    upstream = DeltaTable(str(out / f"domain_{d - 1:02d}" / "product_00")).to_pandas()
                    frame = upstream.assign(label=upstream["label"] + ".")
                else:
                    frame = items(rows, d * products + p)
                validated = ItemsContract.validate(frame, lazy=True)
                batch = source.add_dataframe_asset(name=f"{domain}.{name}").add_batch_definition_whole_dataframe("output")
                suite = context.suites.add(gx.ExpectationSuite(
                    name=f"{domain}.{name}", expectations=[gx.expectations.ExpectColumnValuesToNotBeNull(column="label")]))
                result = context.validation_definitions.add(
                    gx.ValidationDefinition(name=f"{domain}.{name}", data=batch, suite=suite)
                ).run(batch_parameters={"dataframe": validated})
                if not result.success:
                    raise SystemExit(f"{domain}.{name} failed its checks")
                table = pa.Table.from_pandas(validated, preserve_index=False)
                write_deltalake(str(out / domain / name), table, mode="overwrite")
                con.execute("BEGIN TRANSACTION")
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{domain}"')
                con.register("frame", table)
                con.execute(f'CREATE OR REPLACE TABLE "{domain}"."{name}" AS SELECT * FROM frame')
                con.execute("COMMIT")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
