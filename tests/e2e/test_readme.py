"""The README's commands and code, run as written in a fresh copy of the repository, so the README
cannot drift from the code: the quickstart, "Add a domain" (scaffolded, removed, then by hand),
"Add a data product" and "Remove a domain".

Two things differ from a user's terminal: the copy shares this environment's `.venv` (a fresh
clone's `make test`, which CI runs, builds one from the lock file), and `make test` runs the test
files PYTEST_ARGS names, since the whole suite is what is running this test. If the mesh already
has a domain named as in the README (`penguins`), the blocks use a free name instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support import (FIXTURES, REPO, copy_repository, free_name, free_port, helm_deployments, needs_example, stop,
                           wait_for_locations)

README = (REPO / "README.md").read_text()
LINT_CLEAN = "tests/e2e/test_lint.py::test_the_example_mesh_lints_clean_without_materializing"


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    """Each line of a shell block, without its trailing comment."""
    return [line for line in (re.sub(r"\s+#\s.*$", "", raw).strip() for raw in block.splitlines()) if line]


@pytest.fixture
def copy(tmp_path):
    root = copy_repository(tmp_path / "mesh")
    (root / ".venv").symlink_to(REPO / ".venv")
    stamp = (REPO / ".venv" / ".installed-from-lock").stat().st_mtime
    for name in ("requirements.lock", "pyproject.toml"):  # the shared venv is current for them: make keeps it
        os.utime(root / name, (stamp - 1, stamp - 1))
    return root


def environment(tmp_path, **extra) -> dict[str, str]:
    home = tmp_path / "user"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DAGSTER_HOME", "MESH_"))}
    return {**env, "HOME": str(home), **extra}


def shell(command: str, *, cwd, env, timeout: float = 900) -> subprocess.CompletedProcess:
    run = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"`{command}` exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


@needs_example("operations")
def test_the_quickstart_runs_as_written(copy, tmp_path):
    env = environment(tmp_path, PORT=str(free_port()), PYTEST_ARGS=f"-p no:cacheprovider {LINT_CLEAN}")
    ran = []
    for block in blocks(section("Quickstart"), "bash"):
        for command in commands(block):
            if command == "make run":
                log_path = tmp_path / "run.log"
                with open(log_path, "w+") as log:
                    process = subprocess.Popen(["bash", "-c", command], cwd=copy, env=env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True)
                    try:
                        entries = wait_for_locations(int(env["PORT"]), process, log_path)
                        assert all(e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)
                        assert re.search(r"(\d+)/\1 products published", log_path.read_text()), log_path.read_text()[-3000:]
                    finally:
                        stop(process)
            else:
                shell(command, cwd=copy, env=env)
            ran.append(command)
    assert ran[:2] == ["make run", "make test"] and len(ran) >= 4, ran


def test_add_a_domain_and_a_product_run_as_written_both_ways(copy, tmp_path):
    name = free_name(copy / "workspace.yaml", "penguins")
    as_here = lambda text: re.sub(r"(?<![A-Za-z0-9])penguins(?![A-Za-z0-9])", name, text)  # noqa: E731
    domain_section, product_section = as_here(section("Add a domain")), as_here(section("Add a data product"))
    scaffold, by_hand, remove = blocks(domain_section, "bash")
    own_tests = f"-p no:cacheprovider -v tests/domains/test_{name}.py tests/domains/test_{name}__*.py {LINT_CLEAN}"
    env = environment(tmp_path, PYTEST_ARGS=own_tests)  # the new domain's tests, whatever others the mesh has
    for data_file in re.findall(r"~/(\S+\.csv)", scaffold):  # the README's ~/penguins.csv
        shutil.copy(FIXTURES / "data" / "penguins.csv", tmp_path / "user" / data_file)

    # Scaffolded: mesh new domain, mesh new product --from ~/penguins.csv, lint and make test.
    for command in commands(scaffold):
        run = shell(command, cwd=copy, env=env)
    for test in (f"test_{name}.py::", f"test_{name}__observations.py::", LINT_CLEAN):
        assert re.search(rf"PASSED \S*{re.escape(test)}", run.stdout), (test, run.stdout[-3000:])
    assert (copy / "domains" / name / "data" / "observations.csv").exists()

    # Removed again, with the README's command.
    [removal] = commands(remove)
    shell(removal, cwd=copy, env=env)
    assert not (copy / "domains" / name).exists()

    # By hand: the workspace entry, definitions, contracts, suites, products and test exactly as shown.
    for block in blocks(domain_section, "yaml") + blocks(domain_section + product_section, "python"):
        header, _, body = block.partition("\n")
        target = header.removeprefix("# ").removesuffix(" (continued)")
        if not header.startswith("# ") or ("/" not in target and target != "workspace.yaml"):
            continue  # a fragment (the governance examples), not a file
        path = copy / target
        if target == "workspace.yaml":
            entry = body.split("load_from:\n", 1)[1]
            path.write_text(path.read_text().rstrip("\n") + "\n" + entry)
        elif header.endswith("(continued)"):
            path.write_text(path.read_text() + "\n\n" + body)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
    data = copy / "domains" / name / "data" / "observations.csv"
    data.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "data" / "penguins.csv", data)  # "any CSV with those columns"
    env["PYTEST_ARGS"] = f"-p no:cacheprovider -v tests/domains/test_{name}__*.py {LINT_CLEAN}"
    for command in commands(by_hand):
        run = shell(command, cwd=copy, env=env)
    for test in (f"test_{name}__colonies.py::", LINT_CLEAN):  # the README's test of colonies, and lint
        assert re.search(rf"PASSED \S*{re.escape(test)}", run.stdout), (test, run.stdout[-3000:])
    assert helm_deployments(copy)[name] == ["--module-name", f"domains.{name}.definitions", "--location-name", name]
    published = shell(f".venv/bin/mesh materialize -d {name}", cwd=copy, env=env)
    assert "2/2 products published" in published.stdout, published.stdout

    # The same colonies in Polars, then in SQL, as the README shows them: each lints, passes the README's
    # test of colonies, and publishes.
    products = copy / "domains" / name / "products.py"
    pandas_text = products.read_text()
    pandas_fn = pandas_text[pandas_text.index("def colonies("):].split("\n\n\n")[0]
    alternatives = {header: body for header, body in (block.partition("\n")[::2] for block in blocks(product_section, "python"))
                    if header.startswith("# colonies, in ")}
    assert sorted(alternatives) == ["# colonies, in Polars: the same @data_product(...) as above, and `import polars as pl`",
                                    '# colonies, in SQL: the same @data_product(...) as above, with sql="colonies.sql"']
    [sql] = blocks(product_section, "sql")
    sql_header, _, query = sql.partition("\n")
    for header, function in alternatives.items():
        text = pandas_text.replace(pandas_fn, function.rstrip("\n"))
        if "Polars" in header:
            text = "import polars as pl\n" + text
        else:
            text = text.replace("    slo=SLO(max_age_hours=26),\n)\ndef colonies(",
                                '    slo=SLO(max_age_hours=26),\n    sql="colonies.sql",\n)\ndef colonies(')
            (copy / sql_header.removeprefix("-- ")).write_text(query)
        assert text != pandas_text and "def colonies(" in text and ("Polars" in header or 'sql="colonies.sql"' in text)
        products.write_text(text)
        run = shell(f".venv/bin/pytest -p no:cacheprovider -v tests/domains/test_{name}__colonies.py", cwd=copy, env=env)
        assert re.search(rf"test_{name}__colonies.py::\S+ PASSED", run.stdout), (header, run.stdout[-3000:])
        shell(".venv/bin/mesh lint", cwd=copy, env=env)
        published = shell(f".venv/bin/mesh materialize -d {name}", cwd=copy, env=env)
        assert "2/2 products published" in published.stdout, (header, published.stdout)
