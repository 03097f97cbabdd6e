"""The path `dagster.yaml` files written by Mesh before its layered layout name for the instance.

`instance_class: {module: mesh_core.instance_storage, class: MeshInstance}` is stored in homes that
already exist, where Dagster imports it by name; it keeps loading. New homes name
`mesh_core.instance.pooled_sqlite`. Not part of the public API: import from `mesh_core`.
"""

from mesh_core.instance.pooled_sqlite import MeshInstance as MeshInstance
