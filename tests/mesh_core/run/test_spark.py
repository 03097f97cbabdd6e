"""The domain's Spark as configuration: which Spark a step gets, and the one-line errors when it cannot."""

from __future__ import annotations

import pytest

from mesh_core import SparkEngine, SparkUnavailableError
from mesh_core.run.spark import REMOTE_ENV, is_spark_frame, shown
from tests.support import free_port


def test_the_resource_wins_over_the_environment_and_sql_follows_a_configured_spark(monkeypatch):
    monkeypatch.delenv(REMOTE_ENV, raising=False)
    assert SparkEngine().resolved() is None and not SparkEngine().runs_sql  # SQL products stay in DuckDB
    monkeypatch.setenv(REMOTE_ENV, " sc://env-host:15002 ")
    assert SparkEngine().resolved() == "sc://env-host:15002" and SparkEngine().runs_sql
    assert SparkEngine(remote="local[2]").resolved() == "local[2]"


@pytest.mark.parametrize("remote", ["http://spark:15002", "spark:15002", "yarn"])
def test_a_remote_that_is_neither_spark_connect_nor_local_is_refused_naming_the_setting(remote):
    with pytest.raises(SparkUnavailableError) as raised:
        SparkEngine(remote=remote).session("insights.route_performance")
    text = str(raised.value)
    assert "insights.route_performance" in text and REMOTE_ENV in text and "sc://<host>:<port>" in text and "\n" not in text


def test_a_token_in_the_url_is_never_printed():
    url = f"sc://127.0.0.1:{free_port()}/;use_ssl=true;token=s3cr3t-value;x-databricks-cluster-id=1"
    assert "s3cr3t" not in shown(url) and "token=***" in shown(url)
    with pytest.raises(SparkUnavailableError) as raised:
        SparkEngine(remote=url).session("insights.route_performance")
    text = str(raised.value)
    assert "s3cr3t" not in text and "cannot reach Spark at sc://127.0.0.1" in text and "\n" not in text, text


def test_only_pyspark_dataframes_count_as_spark_output():
    import pandas as pd
    import polars as pl

    assert not is_spark_frame(pd.DataFrame()) and not is_spark_frame(pl.DataFrame()) and not is_spark_frame(None)
