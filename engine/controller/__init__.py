"""The controller: kopf watches the management cluster; our work queue does the rest.

This package is the only importer of kopf (enforced by import-linter). kopf
delivers watch events for our kinds into `store.Store` and wakes the
reconcilers through `queue.WorkQueue`; the reconcilers (`profiles`,
`summaries`, `clusters`) call the pure decision modules and the adapters,
and translate typed errors into conditions and Events exactly once
(`reporting`).
"""
