"""Every workspace.yaml mistake a new user makes is one clear error and exit code 2."""

from __future__ import annotations

import pytest

from tests.support import REPO, make_dagster_home, run_mesh, workspace_domains

ENTRY = "  - python_module: {{module_name: {module}, location_name: {name}, working_directory: {cwd}}}\n"


def entry(module="domains.alpha.definitions", name="alpha", cwd=str(REPO)):
    return ENTRY.format(module=module, name=name, cwd=cwd)


CASES = {
    "yaml syntax": ("load_from: [\n", "is not valid YAML at line 2, column 1"),
    "wrong shape": ("load_from:\n  python_module: x\n", "lists no code locations: it needs a `load_from:` list"),
    "binary file": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not a text file"),
    "duplicate name": ("load_from:\n" + entry() + entry("domains.beta.definitions"),
                       "entries 1 and 2 are both named 'alpha'"),
    "missing folder": ("load_from:\n" + entry(cwd="/nonexistent/folder"),
                       "has working_directory /nonexistent/folder, which is not a folder"),
    "missing module": ("load_from:\n" + entry("domains.nosuch.definitions", "nosuch"),
                       "ModuleNotFoundError: No module named 'domains.nosuch'. Fix: check module_name in workspace.yaml, "
                       "or create domains/nosuch/definitions.py"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_workspace_mistake_is_named_with_exit_code_2(case, tmp_path):
    content, message = CASES[case]
    path = tmp_path / "workspace.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    home = make_dagster_home(tmp_path)
    for command in (["lint"], ["materialize"]):
        run = run_mesh(*command, "-w", str(path), home=home, cwd=tmp_path)
        assert run.returncode == 2, (command, run.stdout, run.stderr)
        assert message in run.stderr, (command, run.stderr)
        assert "Traceback" not in run.stderr


@pytest.mark.workspace
def test_a_misspelled_domain_or_input_suggests_the_name(tmp_path):
    domain = max(workspace_domains(), key=len)
    typo = domain[:2] + domain[3:]  # one letter left out
    run = run_mesh("materialize", "-d", typo, home=make_dagster_home(tmp_path))
    assert run.returncode == 2 and f"No domain '{typo}'" in run.stderr and f"(did you mean '{domain}'?)" in run.stderr


def test_a_domain_folder_missing_from_the_workspace_is_pointed_out(tmp_path):
    (tmp_path / "domains" / "penguins").mkdir(parents=True)
    (tmp_path / "domains" / "penguins" / "definitions.py").write_text("")
    (tmp_path / "workspace.yaml").write_text("load_from:\n" + entry())
    run = run_mesh("lint", "-d", "penguins", "-w", str(tmp_path / "workspace.yaml"), home=make_dagster_home(tmp_path),
                   cwd=tmp_path)
    assert run.returncode == 2
    assert "domains/penguins exists but workspace.yaml does not list it" in run.stderr, run.stderr


DOMAIN = '''import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from mesh_core import Expectation, data_product, domain_definitions


class Items(pa.DataFrameModel):
    item_id: Series[int] = pa.Field(unique=True, description="Item number.")

    class Config:
        strict = True


@data_product(domain="{name}", description="One row per item.", owners=["team:{name}"], contract=Items,
              suite=[Expectation("ExpectColumnValuesToNotBeNull", column="item_id")], inputs={inputs})
def {product}({params}):
    return pd.DataFrame({{"item_id": [1]}})


defs = domain_definitions("{name}", [{product}])
'''


def test_a_misspelled_input_of_a_listed_domain_gets_did_you_mean_but_no_unlisted_hint(tmp_path):
    # producer and consumer both have folders under domains/ and entries in workspace.yaml
    for name, product, inputs, params in (("producer", "items", "{}", ""),
                                          ("consumer", "copies", "{'items': 'producer.itemz'}", "items")):
        folder = tmp_path / "domains" / name
        folder.mkdir(parents=True)
        (tmp_path / "domains" / "__init__.py").write_text("")
        (folder / "__init__.py").write_text("")
        (folder / "definitions.py").write_text(DOMAIN.format(name=name, product=product, inputs=inputs, params=params))
    cwd = str(tmp_path)
    (tmp_path / "workspace.yaml").write_text("load_from:\n" + entry("domains.producer.definitions", "producer", cwd)
                                             + entry("domains.consumer.definitions", "consumer", cwd))
    home = make_dagster_home(tmp_path)
    run = run_mesh("lint", "-w", str(tmp_path / "workspace.yaml"), home=home, cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    [finding] = [line for line in (run.stdout + run.stderr).splitlines() if "[inputs-exist]" in line]
    assert "reads producer.itemz, which no domain in the workspace publishes (did you mean 'producer.items'?)" in finding
    assert "does not list it" not in finding and "add the domain" not in finding, finding
    assert "Fix: fix the reference: domain 'producer' has no product 'itemz'." in finding

    # The hint stays where it is true: the producer's folder is there, its entry is not.
    (tmp_path / "workspace.yaml").write_text("load_from:\n" + entry("domains.consumer.definitions", "consumer", cwd))
    run = run_mesh("lint", "-w", str(tmp_path / "workspace.yaml"), home=home, cwd=tmp_path)
    [finding] = [line for line in run.stdout.splitlines() if "[inputs-exist]" in line]
    assert "domains/producer exists but workspace.yaml does not list it" in finding, finding
