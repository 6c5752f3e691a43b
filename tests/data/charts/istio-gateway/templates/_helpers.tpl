{{- define "gateway.name" -}}
{{ .Release.Name }}
{{- end }}

{{- define "gateway.selectorLabels" -}}
app: {{ include "gateway.name" . }}
istio: {{ .Values.labels.istio | default (.Release.Name | trimPrefix "istio-") }}
{{- end }}

{{- define "gateway.labels" -}}
{{ include "gateway.selectorLabels" . }}
app.kubernetes.io/name: {{ include "gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: istio
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
