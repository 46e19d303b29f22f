{{- define "defaulted.labels" -}}
app.kubernetes.io/name: defaulted
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: flotilla-standin
{{- end }}

{{- define "defaulted.selector" -}}
app.kubernetes.io/name: defaulted
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
