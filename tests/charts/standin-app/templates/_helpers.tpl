{{- define "standin-app.labels" -}}
app.kubernetes.io/name: standin-app
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flotilla-standin
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
