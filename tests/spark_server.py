"""A real Spark Connect server for the Spark tests: Apache Spark from the pyspark wheel on Java 17,
local mode with two executor threads, on a free 127.0.0.1 port, in its own temporary folder.

Started as a platform team runs one (`spark-submit --class ...SparkConnectServer`), so Mesh reaches
it through its URL like a cluster's; stopped with its whole process group however the test ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.deploy.servers import stop_group, wait_until
from tests.support import free_port

STARTUP_SECONDS = 180
CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def java_missing() -> str | None:
    """Why no local Spark can start here (no Java 17), else None."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java: install Debian's openjdk-17-jre-headless (make test does, as root)"
    return None


@contextmanager
def spark_connect_server(threads: int = 2) -> Iterator["SparkServer"]:
    folder = Path(tempfile.mkdtemp(prefix="mesh-spark-"))
    port = free_port()
    log = folder / "server.log"
    home = spark_home()
    # The executors' Python is this interpreter (pyarrow and the rest installed), not the system's python3.
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_DIRS": str(folder / "local"),
           "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    command = [str(home / "bin" / "spark-submit"), "--class", CONNECT_SERVER, "--master", f"local[{threads}]",
               "--driver-memory", "1g",
               "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
               "--conf", "spark.ui.enabled=false", "--conf", f"spark.sql.warehouse.dir={folder / 'warehouse'}",
               "--conf", f"spark.driver.extraJavaOptions=-Djava.io.tmpdir={folder}",
               "spark-internal"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
                                   start_new_session=True)
    server = SparkServer(f"sc://127.0.0.1:{port}", port, process, folder, log)
    try:
        wait_until("the Spark Connect server", server.listening, STARTUP_SECONDS,
                   alive=lambda: process.poll() is None, log=log)
        yield server
    finally:
        stop_group(process)
        shutil.rmtree(folder, ignore_errors=True)


class SparkServer:
    def __init__(self, url: str, port: int, process: subprocess.Popen, folder: Path, log: Path):
        self.url, self.port, self.process, self.folder, self.log = url, port, process, folder, log

    def listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def session(self):
        """A new client session of this server (its own temp views and settings)."""
        from pyspark.sql import SparkSession

        return SparkSession.builder.remote(self.url).create()
