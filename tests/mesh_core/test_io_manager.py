import dagster as dg
import pandas as pd
import pytest

from mesh_core import AccessDeniedError, MeshIOManager


def test_a_domain_cannot_publish_to_another_domains_port(tmp_path):
    manager = MeshIOManager(domain="sales", data_dir=str(tmp_path))
    context = dg.build_output_context(asset_key=dg.AssetKey(["billing", "invoices"]),
                                      definition_metadata={"mesh/version": "1.0.0", "mesh/access": "public"})
    with pytest.raises(AccessDeniedError, match=r"Domain 'sales' may not publish billing\.invoices: a domain writes only its own ports"):
        manager.handle_output(context, pd.DataFrame({"n": [1]}))
    assert not (tmp_path / "billing").exists() and not (tmp_path / "sales").exists()
