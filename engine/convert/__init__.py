"""`flotilla convert`: Sveltos YAML in, Flotilla YAML out, with what could not be carried over.

The package is pure (no kopf, kubernetes or pyhelm3; no I/O): the command in
engine/cli/convert.py reads the files and writes the result.

    documents   the driver: one converter per kind, output order, the result's text
    profiles    ClusterProfile / Profile specs, field by field
    clusters    SveltosCluster → WorkloadCluster
    fields      the mapping table (every Sveltos spec field → pass/rename/convert/unsupported)
    schema      fits converted values to our CRD schemas, reporting what does not fit
    jinja       Go template → Jinja2 translation; gotemplate parses, functions maps sprig
    meta        metadata kept and dropped
    report      findings
"""

from engine.convert.documents import Result, convert

__all__ = ["Result", "convert"]
