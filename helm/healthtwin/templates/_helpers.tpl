{{- define "healthtwin.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "healthtwin.headless" -}}
{{- printf "%s-peers" (include "healthtwin.fullname" .) -}}
{{- end -}}

{{- define "healthtwin.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "healthtwin.labels" -}}
{{ include "healthtwin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.region }}
healthtwin.io/region: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "healthtwin.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The members' volumes: the node's and the standby follower's StatefulSet claim the same ones. */}}
{{- define "healthtwin.volumeClaimTemplates" -}}
volumeClaimTemplates:
  - metadata:
      name: data
      labels:
        {{- include "healthtwin.selectorLabels" . | nindent 8 }}
    spec:
      accessModes:
        {{- toYaml .Values.persistence.accessModes | nindent 8 }}
      {{- with .Values.persistence.storageClassName }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ .Values.persistence.size }}
{{- end }}
