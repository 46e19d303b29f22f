{{/* Names and labels shared by every template of the Flotilla chart. */}}

{{- define "flotilla.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name, or "<release>-flotilla" when it lacks "flotilla". */}}
{{- define "flotilla.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flotilla.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "flotilla.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flotilla
{{- end -}}

{{- define "flotilla.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flotilla.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "flotilla.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flotilla.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "flotilla.image" -}}
{{- $tag := .Values.image.tag | default (printf "%s-helm-%s" .Chart.AppVersion .Values.helm.version) -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* A shard's suffix: "" for the unsharded controller, "-<key>" otherwise. Called with the key. */}}
{{- define "flotilla.shardSuffix" -}}
{{- if . -}}{{ printf "-%s" . }}{{- end -}}
{{- end -}}

{{/* The Lease a shard elects its leader on. Called with (list $ key). */}}
{{- define "flotilla.leaseName" -}}
{{- $ := index . 0 -}}
{{- printf "%s-controller%s" (include "flotilla.fullname" $) (include "flotilla.shardSuffix" (index . 1)) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
