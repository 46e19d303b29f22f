"""Sveltos YAML in the shapes Sveltos's documentation teaches, written for our tests.

Used by tests/unit/test_convert_examples.py (what `flotilla convert` makes of
each) and tests/e2e/test_convert.py (the output applies to a real API server
with our CRDs; one deploys). Each example is what a Sveltos user would have
in a repository: the profile plus the ConfigMaps/Secrets it references, in
namespace `default`.
"""

from __future__ import annotations

# A Helm chart with inline values, as in Sveltos's quick start (Kyverno).
KYVERNO = """
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: deploy-kyverno
spec:
  clusterSelector:
    matchLabels:
      env: fv
  helmCharts:
  - repositoryURL:    https://kyverno.github.io/kyverno/
    repositoryName:   kyverno
    chartName:        kyverno/kyverno
    chartVersion:     v3.3.3
    releaseName:      kyverno-latest
    releaseNamespace: kyverno
    helmChartAction:  Install
    values: |
      admissionController:
        replicas: 1
      backgroundController:
        enabled: false
"""

# policyRefs: a ConfigMap of manifests that is a template, and a plain Secret of manifests.
POLICY_REFS = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-info
  namespace: default
  annotations:
    projectsveltos.io/template: "ok"
data:
  info.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: cluster-info
      namespace: kube-public
      labels:
        region: {{ index .Cluster.metadata.labels "region" | default "unknown" | quote }}
    data:
      name: {{ .Cluster.metadata.name }}
      {{- if eq (index .Cluster.metadata.labels "env") "prod" }}
      tier: gold
      {{- else }}
      tier: bronze
      {{- end }}
---
apiVersion: v1
kind: Secret
metadata:
  name: quota
  namespace: default
type: addons.projectsveltos.io/cluster-profile
stringData:
  quota.yaml: |
    apiVersion: v1
    kind: ResourceQuota
    metadata:
      name: default-quota
      namespace: default
    spec:
      hard:
        pods: "50"
---
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: cluster-info
spec:
  clusterSelector:
    matchLabels:
      env: fv
  policyRefs:
  - name: cluster-info
    namespace: default
    kind: ConfigMap
  - name: quota
    namespace: default
    kind: Secret
"""

# valuesFrom: values in a templated ConfigMap and in a Secret, merged over inline values.
VALUES_FROM = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-values
  namespace: default
  annotations:
    projectsveltos.io/template: "ok"
data:
  values.yaml: |
    data:
      cluster: {{ .Cluster.metadata.name | quote }}
      zone: {{ index .Cluster.metadata.labels "zone" | default "none" | upper | quote }}
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret-values
  namespace: default
stringData:
  values.yaml: |
    replicas: 2
---
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: app-with-values
spec:
  clusterSelector:
    matchLabels:
      env: fv
  helmCharts:
  - repositoryURL:    https://charts.example.org/apps
    repositoryName:   apps
    chartName:        apps/standin-app
    chartVersion:     0.1.0
    releaseName:      app
    releaseNamespace: apps
    helmChartAction:  Install
    values: |
      data:
        greeting: hi
    valuesFrom:
    - kind: ConfigMap
      name: app-values
      namespace: default
    - kind: Secret
      name: app-secret-values
      namespace: default
"""

# dependsOn: the policies profile waits for the engine profile on every cluster.
DEPENDS_ON = """
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: policy-engine
spec:
  clusterSelector:
    matchLabels:
      env: fv
  helmCharts:
  - repositoryURL:    https://kyverno.github.io/kyverno/
    repositoryName:   kyverno
    chartName:        kyverno/kyverno
    chartVersion:     v3.3.3
    releaseName:      kyverno-latest
    releaseNamespace: kyverno
---
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: policies
spec:
  dependsOn:
  - policy-engine
  policyRefs:
  - name: disallow-latest
    namespace: default
    kind: ConfigMap
"""

# Tiers: a lower tier takes over what a fleet-wide profile deploys; continueOnConflict.
TIERS = """
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: fleet-defaults
spec:
  clusterSelector:
    matchExpressions:
    - {key: env, operator: Exists}
  continueOnConflict: true
  policyRefs:
  - {kind: ConfigMap, namespace: default, name: fleet-settings}
---
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: prod-overrides
spec:
  tier: 50
  clusterSelector:
    matchLabels: {env: prod}
  policyRefs:
  - {kind: ConfigMap, namespace: default, name: prod-settings}
"""

# syncMode with drift detection, stopMatchingBehavior, continueOnError.
SYNC_MODE = """
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: drift-checked
spec:
  clusterSelector:
    matchLabels: {env: fv}
  syncMode: ContinuousWithDriftDetection
  stopMatchingBehavior: LeavePolicies
  continueOnError: true
  policyRefs:
  - {kind: ConfigMap, namespace: default, name: fleet-settings}
"""

# maxUpdate as a percentage, and as a number written as a string.
MAX_UPDATE = """
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: careful-rollout
spec:
  clusterSelector:
    matchLabels: {env: fv}
  maxUpdate: 30%
  policyRefs:
  - {kind: ConfigMap, namespace: default, name: fleet-settings}
---
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: one-at-a-time
spec:
  clusterSelector:
    matchLabels: {env: fv}
  maxUpdate: "1"
  policyRefs:
  - {kind: ConfigMap, namespace: default, name: fleet-settings}
"""

# validateHealths: a Helm-scoped check with two named CEL rules (the first true decides).
VALIDATE_HEALTHS = """
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: healthy-ingress
spec:
  clusterSelector:
    matchLabels: {env: fv}
  maxUpdate: 50%
  helmCharts:
  - repositoryURL:    https://kubernetes.github.io/ingress-nginx
    repositoryName:   ingress-nginx
    chartName:        ingress-nginx/ingress-nginx
    chartVersion:     4.11.3
    releaseName:      ingress
    releaseNamespace: ingress-nginx
  validateHealths:
  - name: controller-ready
    featureID: Helm
    group: apps
    version: v1
    kind: Deployment
    namespace: ingress-nginx
    evaluateCEL:
    - name: all-replicas-available
      rule: resource.status.availableReplicas == resource.spec.replicas
    - name: scaled-to-zero
      rule: resource.spec.replicas == 0
"""

# clusterRefs: explicit clusters, beside (or instead of) the selector.
CLUSTER_REFS = """
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: pinned
spec:
  clusterRefs:
  - apiVersion: lib.projectsveltos.io/v1beta1
    kind: SveltosCluster
    namespace: fleet
    name: cluster-1
  policyRefs:
  - {kind: ConfigMap, namespace: default, name: fleet-settings}
"""

# A registered cluster: its kubeconfig Secret under Sveltos's default name.
SVELTOS_CLUSTER = """
apiVersion: v1
kind: Secret
metadata:
  name: edge-7-sveltos-kubeconfig
  namespace: default
data:
  kubeconfig: YXBpVmVyc2lvbjogdjEKa2luZDogQ29uZmlnCg==
---
apiVersion: lib.projectsveltos.io/v1beta1
kind: SveltosCluster
metadata:
  name: edge-7
  namespace: default
  labels:
    env: fv
    region: eu-west
spec:
  consecutiveFailureThreshold: 3
"""

# A Profile (namespaced) with values templated from the cluster: if/else, range, toYaml.
PROFILE_TEMPLATED = """
apiVersion: config.projectsveltos.io/v1beta1
kind: Profile
metadata:
  name: tenant-app
  namespace: default
spec:
  clusterSelector:
    matchLabels: {env: fv}
  helmCharts:
  - repositoryURL:    https://charts.example.org/apps
    repositoryName:   apps
    chartName:        apps/standin-app
    chartVersion:     0.1.0
    releaseName:      tenant-app
    releaseNamespace: tenant
    values: |
      {{- if eq (index .Cluster.metadata.labels "env") "prod" }}
      replicas: 3
      {{- else }}
      replicas: 1
      {{- end }}
      nodeSelector:
        {{- toYaml .Cluster.metadata.labels | nindent 2 }}
      data:
      {{- range $key, $value := .Cluster.metadata.labels }}
        label-{{ $key }}: {{ $value | quote }}
      {{- end }}
"""

# templateResourceRefs: a management-cluster ConfigMap, named per cluster, feeds the values.
TEMPLATE_RESOURCE_REFS = """
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: per-cluster-settings
spec:
  clusterSelector:
    matchLabels: {env: fv}
  templateResourceRefs:
  - identifier: Settings
    resource:
      apiVersion: v1
      kind: ConfigMap
      name: "{{ .Cluster.metadata.name }}-settings"
      namespace: default
  helmCharts:
  - repositoryURL:    https://charts.example.org/apps
    repositoryName:   apps
    chartName:        apps/standin-app
    chartVersion:     0.1.0
    releaseName:      configured-app
    releaseNamespace: apps
    values: |
      replicas: {{ (getResource "Settings").data.replicas | default "1" | int }}
      data:
        owner: {{ (getResource "Settings").data.owner | quote }}
"""

# kustomizationRefs from a ConfigMap: values computed per cluster feed the built objects.
KUSTOMIZE = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-kustomize
  namespace: default
data:
  kustomization.yaml: |
    resources:
    - settings.yaml
  settings.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: web-settings
    data:
      region: '{{ default "west" .Region }}'
      cluster: '{{ .Cluster.metadata.name }}'
---
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: web-kustomized
spec:
  clusterSelector:
    matchLabels: {env: fv}
  kustomizationRefs:
  - kind: ConfigMap
    name: web-kustomize
    namespace: default
    targetNamespace: web
    values:
      Region: '{{ index .Cluster.metadata.labels "region" }}'
"""

EXAMPLES = {
    "kyverno": KYVERNO,
    "policy-refs": POLICY_REFS,
    "values-from": VALUES_FROM,
    "depends-on": DEPENDS_ON,
    "tiers": TIERS,
    "sync-mode": SYNC_MODE,
    "max-update": MAX_UPDATE,
    "validate-healths": VALIDATE_HEALTHS,
    "cluster-refs": CLUSTER_REFS,
    "sveltos-cluster": SVELTOS_CLUSTER,
    "profile-templated": PROFILE_TEMPLATED,
    "template-resource-refs": TEMPLATE_RESOURCE_REFS,
    "kustomize": KUSTOMIZE,
}
