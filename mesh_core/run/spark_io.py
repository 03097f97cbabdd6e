"""A Spark product's data in and out: inputs as Spark DataFrames over the pinned, verified files of
each port version; SQL over its inputs only; the output conformed to the contract in Spark and
written by the executors into a staging folder of the product's port (`OutputPort.adopt` then
makes those files a version). Nothing is collected to the driver.

Spark reads and writes the port's location itself: local folders as file:// URIs (a local Spark,
or a Spark Connect server on the same machine or a shared mount), object storage as s3a:// URIs
(its credentials are the cluster's, as for any Spark job).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from mesh_core.errors import ProductOutputError
from mesh_core.run.spark import spark_cause

# Widening casts only: what a Spark expression made narrower than the contract (an int count, a
# float) is widened; anything else is left for the contract to report. bigint to double is exact
# below 2**53 only (a count, a number of seats); larger integers would round, as pandas' coercion does.
_WIDENS = {("int", "bigint"), ("smallint", "bigint"), ("tinyint", "bigint"), ("smallint", "int"), ("tinyint", "int"),
           ("float", "double"), ("int", "double"), ("bigint", "double"), ("timestamp_ntz", "timestamp")}


def spark_uri(path: str, local: bool) -> str:
    """A port file or folder as Spark names it: file:///... locally, s3a://bucket/key on object storage."""
    if local:
        return "file://" + path if path.startswith("/") else path
    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://"):]
    return path if "://" in path else "s3a://" + path  # a pyarrow S3 dataset names files "bucket/key"


def spark_read(spark, dataset, paths: Sequence[str], local: bool):
    """The input version as a Spark DataFrame: the verified files of the pinned version, the declared columns only."""
    columns = list(dataset.schema.names)
    frame = spark.read.parquet(*[spark_uri(path, local) for path in paths])
    return frame.select(*[frame[name] for name in columns])


def spark_sql(spark, product, inputs: Mapping[str, Any]):
    """The SQL product's query in Spark SQL, its relations the step's inputs (session temp views)."""
    for name, frame in inputs.items():
        frame.createOrReplaceTempView(name)
    try:
        result = spark.sql(product.sql)
        result.schema  # analysed now: an unknown column or table fails here, naming the product
    except Exception as exc:
        where = f" ({product.sql_file})" if product.sql_file else ""
        raise ProductOutputError(
            f"The SQL of {product.ref}{where} failed in Spark SQL: {spark_cause(exc)}. Its relations are its inputs: "
            f"{', '.join(inputs) or 'none'}; write SQL both DuckDB and Spark run, or keep the domain on DuckDB "
            "(unset MESH_SPARK_REMOTE).") from None
    return result


def conform_spark(frame, contract, ref, wanted: Mapping[str, str | None]):
    """The output in the contract's column order, each column widened to the contract's type (`wanted`:
    column -> Spark type name) where that cannot change a value; extra columns kept for the contract to
    report (strict=True) or dropped ("filter"). Lazy: a Spark plan."""
    from pyspark.sql import functions as F

    schema = contract.to_schema()
    try:
        present = {field.name: field.dataType.simpleString() for field in frame.schema.fields}
    except Exception as exc:
        raise ProductOutputError(f"{ref}'s Spark DataFrame does not resolve: {spark_cause(exc)}") from None
    columns = []
    for name in schema.columns:
        if name not in present:
            continue  # the contract reports a missing column
        have, want = present[name], wanted.get(name)
        coerce = schema.coerce or schema.columns[name].coerce
        if want and have != want and coerce and (have, want) in _WIDENS:
            columns.append(F.col(spark_column(name)).cast(want).alias(name))
        else:
            columns.append(F.col(spark_column(name)))
    if schema.strict != "filter":
        columns += [F.col(spark_column(name)) for name in present if name not in schema.columns]
    return frame.select(*columns)


def write_files(frame, folder_uri: str, ref) -> None:
    """The executors write the frame as Parquet files into `folder_uri` (a new folder)."""
    try:
        frame.write.mode("error").option("compression", "snappy").parquet(folder_uri)
    except Exception as exc:
        raise ProductOutputError(f"{ref} failed while Spark computed and wrote its output: {spark_cause(exc)}. "
                                 "Nothing was published; consumers keep the last version.") from None


def spark_column(name: str) -> str:
    """A column name for Spark's col(): backquoted, any backquote doubled (the data's name, never trusted)."""
    return "`" + name.replace("`", "``") + "`"
