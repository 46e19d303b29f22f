"""Adapters: the only code that talks to clusters and Helm.

`kube` (per-cluster API clients, server-side apply, watches), `kubeconfig`,
`helm` (pyhelm3 and the chart cache). They raise the engine's typed errors
from `engine.errors`, chained with `from`, and never decide policy.
"""
