"""Several lakeflux nodes on one object store (docs/cluster.md): the node registry and the background work
each role does, with the object store as the only coordinator."""

from .node import ClusterNode, Periodic
from .registry import NodeRecord, Registry

__all__ = ["ClusterNode", "NodeRecord", "Periodic", "Registry"]
