"""Flotilla: a Sveltos-style add-on distribution engine for Kubernetes fleets.

The package is layered (see DESIGN.md §3 and the import-linter contract in
pyproject.toml): pure decision modules, adapters doing I/O, and the kopf
controller on top.
"""

__version__ = "0.1.0"
