"""The IO manager every domain uses: publishes through DomainStorage, reads output ports."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from mesh_core.ref import ProductRef
from mesh_core.storage import DomainStorage, resolve_data_dir

IO_MANAGER_KEY = "mesh_io_manager"


class MeshIOManager(dg.ConfigurableIOManager):
    """Writes only its own domain's storage; reads other domains' products read-only."""

    domain: str
    data_dir: str | None = None  # default: $MESH_DATA_DIR, else $DAGSTER_HOME/data

    def storage(self) -> DomainStorage:
        return DomainStorage(resolve_data_dir(self.data_dir), self.domain)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        ref = ProductRef.from_asset_key(context.asset_key)
        meta = context.definition_metadata
        storage = self.storage()
        published = storage.publish(
            ref.product, obj, version=meta["mesh/version"], access=meta["mesh/access"], run_id=context.run_id
        )
        context.add_output_metadata(
            {
                "dagster/row_count": published.rows,
                "dagster/table_name": f"{ref.domain}.{ref.product}",
                "mesh/version": published.version,
                "mesh/snapshot": dg.MetadataValue.path(str(storage.port_dir(ref) / published.snapshot)),
                "mesh/database": dg.MetadataValue.path(str(storage.database_path)),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return self.storage().read(ProductRef.from_asset_key(context.asset_key))
