{{/*
Ray token authentication (issue 15; Ray 2.60 `RAY_AUTH_MODE=token`): the head, every worker pod, the autoscaler
sidecar, the scheduler and its raylet sidecar present the token kept in the chart's Secret (`ray-auth-token`);
the GCS and the raylets refuse anyone else, so a pod that can reach the head cannot drive the cluster.
*/}}
{{- define "render-farm.rayAuthEnv" -}}
{{- if .Values.head.tokenAuth }}
- name: RAY_AUTH_MODE
  value: token
{{ include "render-farm.secretEnv" (dict "ctx" . "name" "RAY_AUTH_TOKEN" "key" "ray-auth-token") }}
{{- end }}
{{- end }}

{{/* NetworkPolicy peers: this release's pods of the given components; pass (dict "ctx" $ "components" (list ...)). */}}
{{- define "render-farm.npPeers" -}}
- podSelector:
    matchExpressions:
      - {key: app.kubernetes.io/instance, operator: In, values: [{{ .ctx.Release.Name | quote }}]}
      - {key: app.kubernetes.io/component, operator: In, values: [{{ join ", " .components }}]}
{{- end }}

{{/* Egress to the object store: the in-release MinIO, or networkPolicy.storeEgress for an external one. */}}
{{- define "render-farm.npStoreEgress" -}}
{{- if .Values.minio.enabled }}
- to:
    {{- include "render-farm.npPeers" (dict "ctx" . "components" (list "minio")) | nindent 4 }}
  ports:
    - {port: {{ .Values.minio.service.port }}, protocol: TCP}
{{- else if .Values.networkPolicy.storeEgress }}
{{- toYaml .Values.networkPolicy.storeEgress }}
{{- else }}
{{- /* Only the endpoint's port, to any address: no database, API or Ray port outside the cluster. */}}
{{- $endpoint := .Values.minio.external.endpoint }}
{{- $port := ternary 443 80 (eq (include "render-farm.s3Secure" .) "true") }}
{{- if contains ":" $endpoint }}
{{- $port = splitList ":" $endpoint | last | int }}
{{- end }}
- ports:
    - {port: {{ $port }}, protocol: TCP}
{{- end }}
{{- end }}

{{/* Egress to the cluster DNS. */}}
{{- define "render-farm.npDnsEgress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        {{- toYaml .Values.networkPolicy.dnsPodSelector | nindent 8 }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}
