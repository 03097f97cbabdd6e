"""The path that instance configuration written by Mesh before its layered layout names.

Such a `dagster.yaml` says `instance_class: {module: mesh_core.instance_storage, class: MeshInstance}`,
and the instance references it hands run workers and code servers name its storages the same way;
Dagster imports each by that name, so they keep loading here. New homes name
`mesh_core.instance.pooled_sqlite`. Not part of the public API: import from `mesh_core`.
"""

from mesh_core.instance.pooled_sqlite import (
    MeshInstance as MeshInstance,
    MeshSqliteStorage as MeshSqliteStorage,
    PooledSqliteEventLogStorage as PooledSqliteEventLogStorage,
    PooledSqliteRunStorage as PooledSqliteRunStorage,
)
