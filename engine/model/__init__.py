"""Pure data types, no I/O.

`types` holds the frozen dataclasses for every spec shape of docs/api.md,
each with a `from_dict` that applies the documented defaults and raises
`errors.SpecError` naming the exact field on malformed input; `quantities`
parses IntOrPercent values and durations; `conditions` edits status
condition lists. Nothing here imports kopf, kubernetes or pyhelm3, and
nothing here touches the network or the file system.
"""
