{{/*
Shared by every Flotilla stand-in chart (each chart carries its own copy, so it
packages on its own). Pods only need to be scheduled: the dev fleet's
simulated nodes mark them Running and Ready, and nothing is ever pulled from
registry.invalid.
*/}}

{{/* Labels on every object; "root" is the chart context, "component" names the part. */}}
{{- define "standin.labels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: flotilla-standin
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | trunc 63 }}
{{- end }}

{{/*
A Deployment, DaemonSet or StatefulSet. Arguments (a dict): root, kind, name,
component; optional: replicas, nodeSelector, env (map), args (list),
serviceName (StatefulSet).
*/}}
{{- define "standin.workload" -}}
apiVersion: apps/v1
kind: {{ .kind }}
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "standin.labels" . | nindent 4 }}
spec:
  {{- if ne .kind "DaemonSet" }}
  replicas: {{ .replicas | default 1 }}
  {{- end }}
  {{- if eq .kind "StatefulSet" }}
  serviceName: {{ .serviceName }}
  {{- end }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .component }}
      app.kubernetes.io/instance: {{ .root.Release.Name }}
  template:
    metadata:
      labels:
        {{- include "standin.labels" . | nindent 8 }}
    spec:
      {{- with .nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ .root.Values.standin.image }}
          imagePullPolicy: IfNotPresent
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .env }}
          env:
            {{- range $key, $value := . }}
            - name: {{ $key }}
              value: {{ $value | quote }}
            {{- end }}
          {{- end }}
          resources:
            {{- toYaml .root.Values.standin.resources | nindent 12 }}
{{- end }}

{{/*
A minimal CustomResourceDefinition (schema: anything goes). Arguments: group,
version, kind, plural; optional: scope (Namespaced, the default, or Cluster),
annotations (map).
*/}}
{{- define "standin.crd" -}}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {{ .plural }}.{{ .group }}
  labels:
    app.kubernetes.io/part-of: flotilla-standin
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  group: {{ .group }}
  names:
    kind: {{ .kind }}
    listKind: {{ .kind }}List
    plural: {{ .plural }}
    singular: {{ .kind | lower }}
  scope: {{ .scope | default "Namespaced" }}
  versions:
    - name: {{ .version }}
      served: true
      storage: true
      subresources:
        status: {}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
{{- end }}
