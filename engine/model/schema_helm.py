"""CRD schema of the per-chart Helm options (Sveltos' `helmCharts[].options`).

Used by `engine.model.schema` for profile `helmCharts[].options` and
`services[].options`, and (without `allowCRDDeletion`) for a CatalogService's
`spec.helmOptions`. Field names, types and enums follow Sveltos; defaults are
left out on purpose: an unset field must stay unset so that a profile's
options can be merged over the catalog's (see `engine.model.helmopts`), and
the documented defaults are applied by the controller. Pure data.
"""

from __future__ import annotations

from engine.model.helmopts import DELETION_PROPAGATIONS
from engine.model.schema_parts import (
    TEXT_LEN,
    Schema,
    boolean,
    duration,
    integer,
    obj,
    string,
    string_map,
)


def helm_options(description: str, *, profile: bool = True) -> Schema:
    """`options` of a chart; `profile=False` drops what only a profile may set."""
    install = obj("Options of `helm install` (the first deployment of the release).", {
        "createNamespace": boolean("Create the release namespace when missing (default true)."),
        "replace": boolean("Re-use the name of an uninstalled release kept in history "
                           "(default true)."),
        "takeOwnership": boolean("Adopt existing objects the chart renders instead of failing."),
        "disableHooks": boolean("Do not run install hooks."),
    })
    upgrade = obj("Options of `helm upgrade`.", {
        "force": boolean("Replace objects that cannot be patched (delete and re-create)."),
        "resetValues": boolean("Start from the chart's values, not the release's."),
        "reuseValues": boolean("Merge the release's last values under the new ones."),
        "resetThenReuseValues": boolean("The chart's values, then the release's last values."),
        "recreate": boolean("Accepted for Sveltos compatibility; helm applies it to rollbacks "
                            "only, which Flotilla does not run."),
        "maxHistory": integer("Revisions kept per release (default 10; 0 = unlimited).",
                              minimum=0),
        "cleanupOnFail": boolean("Delete objects an upgrade created when it fails."),
        "subNotes": boolean("Render the NOTES of subcharts too."),
        "upgradeCRDs": boolean("Accepted for Sveltos compatibility and ignored: helm never "
                               "upgrades the CRDs of a chart's crds/ folder."),
        "takeOwnership": boolean("Adopt existing objects the chart renders instead of failing."),
        "disableHooks": boolean("Do not run upgrade hooks."),
    })
    uninstall = obj("Options of `helm uninstall` (helmChartAction Uninstall, or withdrawal).", {
        "keepHistory": boolean("Keep the release's history (status uninstalled)."),
        "deletionPropagation": string("How dependents of deleted objects are removed.",
                                      enum=DELETION_PROPAGATIONS),
        "disableHooks": boolean("Do not run delete hooks."),
    })
    properties: dict[str, Schema] = {
        "timeout": duration("How long helm waits for each step it waits on — hook Jobs, and "
                            "resources with wait (default 10m)."),
        "wait": boolean("Wait until the release's Pods, Services, ... are ready."),
        "waitForJobs": boolean("With wait: also wait until the release's Jobs complete."),
        "atomic": boolean("Roll a failed upgrade back, uninstall a failed install (sets wait)."),
        "skipCRDs": boolean("Do not install the CRDs of the chart's crds/ folder."),
        "disableHooks": boolean("Do not run any hook (install, upgrade or uninstall)."),
        "disableOpenAPIValidation": boolean("Do not validate rendered objects against the "
                                            "cluster's OpenAPI schema."),
        "skipSchemaValidation": boolean("Do not validate values against values.schema.json."),
        "dependencyUpdate": boolean("Update the chart's dependencies before installing."),
        "enableClientCache": boolean("Accepted for Sveltos compatibility and ignored (helm runs "
                                     "as a process per operation)."),
        "labels": string_map("Labels added to the release's metadata (helm's --labels).",
                             string("", max_length=TEXT_LEN)),
        "description": string("Description recorded with the helm operation.",
                              max_length=TEXT_LEN),
        "installOptions": install,
        "upgradeOptions": upgrade,
        "uninstallOptions": uninstall,
    }
    if profile:
        properties["allowCRDDeletion"] = boolean(
            "Flotilla only. Unless true, every CRD the chart renders is annotated "
            "helm.sh/resource-policy: keep, so no upgrade, correction or uninstall deletes a "
            "CRD (and with it every object of its kind).")
    return obj(description, properties)
