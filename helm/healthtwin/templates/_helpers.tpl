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
  {{- range $k := untilStep 1 (int .Values.replication.factor) 1 }}
  - metadata:
      name: standby-{{ $k }}
      labels:
        {{- include "healthtwin.selectorLabels" $ | nindent 8 }}
    spec:
      accessModes:
        {{- toYaml $.Values.persistence.accessModes | nindent 8 }}
      {{- with $.Values.persistence.storageClassName }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ $.Values.persistence.size }}
  {{- end }}
{{- end }}

{{/* What a node container mounts besides its data volume. */}}
{{- define "healthtwin.nodeMounts" -}}
- {name: tmp, mountPath: /tmp}
- {name: config, mountPath: /etc/healthtwin/config, readOnly: true}
- {name: tls, mountPath: /etc/healthtwin/tls, readOnly: true}
- {name: cluster-ca, mountPath: /etc/healthtwin/cluster-ca, readOnly: true}
- {name: token-keys, mountPath: /etc/healthtwin/token-keys, readOnly: true}
- {name: storage-key, mountPath: /etc/healthtwin/storage-key, readOnly: true}
{{- if .Values.tls.clientCASecretName }}
- {name: client-ca, mountPath: /etc/healthtwin/client-ca, readOnly: true}
{{- end }}
{{- if and .Values.region .Values.regions.caSecretName }}
- {name: region-ca, mountPath: /etc/healthtwin/region-ca, readOnly: true}
{{- end }}
{{- end }}

{{/* A voter's replication flags (dict root, rank): the StatefulSet's layout
names the voters and standbys (ADR 0039). */}}
{{- define "healthtwin.replicationArgs" -}}
{{- $v := .root.Values -}}
- --replication-factor={{ $v.replication.factor | int }}
- --replication-listen=0.0.0.0:{{ add $v.replication.port (mul .rank (int $v.replication.portStep)) }}
- --replication-standby-rank={{ .rank }}
- --replication-port-step={{ $v.replication.portStep | int }}
- --replication-election-ms={{ $v.replication.electionMs | int }}
- --replication-commit-timeout-ms={{ $v.replication.commitTimeoutMs | int }}
{{- end }}
