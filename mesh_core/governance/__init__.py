"""Federated computational governance: the rules over declarations, and the contracts they keep.

Policies and their levels (`governance.yaml`), consumer-driven contracts, the workspace of every
domain with the mesh-wide rules over it, contract snapshots with the breaking-change gate, ODCS,
the deployment config derived from the workspace, and `lint`. It sits below `run` because rules
are computed when a code location loads: a product that breaks one never becomes an asset.
"""
