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
