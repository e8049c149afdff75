{{/*
Names, labels and the pieces every farm pod shares. Wiring lives here once, so the API, the scheduler and the
Ray pods cannot drift apart in their environment or security settings.
*/}}

{{- define "render-farm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "render-farm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "render-farm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; pass (dict "ctx" $ "component" "api"). */}}
{{- define "render-farm.labels" -}}
helm.sh/chart: {{ include "render-farm.chart" .ctx }}
{{ include "render-farm.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: render-farm
{{- end }}

{{/* Selector labels; pass (dict "ctx" $ "component" "api"). */}}
{{- define "render-farm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "render-farm.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Pod labels: selector labels plus global.podLabels. */}}
{{- define "render-farm.podLabels" -}}
{{ include "render-farm.labels" . }}
{{- with .ctx.Values.global.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "render-farm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "render-farm.serviceAccountName" -}}
{{- if .Values.global.serviceAccount.create }}
{{- default (include "render-farm.fullname" .) .Values.global.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.global.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "render-farm.secretName" -}}
{{- default (printf "%s-credentials" (include "render-farm.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "render-farm.rayClusterName" -}}
{{- printf "%s-ray" (include "render-farm.fullname" .) | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/* KubeRay names the head Service `<cluster>-head-svc`. */}}
{{- define "render-farm.rayHeadService" -}}
{{- printf "%s-head-svc" (include "render-farm.rayClusterName" .) }}
{{- end }}

{{- define "render-farm.rayAddress" -}}
{{- default (printf "%s:6379" (include "render-farm.rayHeadService" .)) .Values.scheduler.rayAddress }}
{{- end }}

{{- define "render-farm.minioName" -}}
{{- printf "%s-minio" (include "render-farm.fullname" .) }}
{{- end }}

{{- define "render-farm.postgresqlName" -}}
{{- printf "%s-postgresql" (include "render-farm.fullname" .) }}
{{- end }}

{{- define "render-farm.s3Endpoint" -}}
{{- if .Values.minio.enabled }}
{{- printf "%s:%d" (include "render-farm.minioName" .) (int .Values.minio.service.port) }}
{{- else }}
{{- required "minio.external.endpoint (host:port) is required when minio.enabled is false" .Values.minio.external.endpoint }}
{{- end }}
{{- end }}

{{- define "render-farm.s3Secure" -}}
{{- if .Values.minio.enabled }}false{{ else }}{{ .Values.minio.external.secure | toString }}{{ end }}
{{- end }}

{{/* Image pull secrets and the service account of a farm pod spec. */}}
{{- define "render-farm.podCommon" -}}
serviceAccountName: {{ include "render-farm.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.global.serviceAccount.automountToken }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.global.podSecurityContext | nindent 2 }}
{{- end }}

{{/* Container securityContext: global defaults with the role's overrides; pass (dict "ctx" $ "role" .Values.api). */}}
{{- define "render-farm.containerSecurityContext" -}}
{{- $merged := mergeOverwrite (deepCopy .ctx.Values.global.containerSecurityContext) (deepCopy (default dict .role.securityContext)) }}
{{- toYaml $merged }}
{{- end }}

{{- define "render-farm.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "render-farm.secretName" .ctx }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{/*
Settings of the Ray pods (head and render nodes): where the store is, but no key to it (issue 15). Render nodes
run studios' untrusted .blend files; each assignment carries presigned URLs for its own job's objects only.
*/}}
{{- define "render-farm.nodeEnv" -}}
- name: FARM_MODE
  value: cluster
{{- /* Without it every process falls back to a folder inside its own container and nothing renders. */}}
- name: FARM_STORAGE
  value: s3
- name: FARM_S3_ENDPOINT
  value: {{ include "render-farm.s3Endpoint" . | quote }}
- name: FARM_S3_BUCKET
  value: {{ .Values.minio.bucket | quote }}
- name: FARM_S3_SECURE
  value: {{ include "render-farm.s3Secure" . | quote }}
- name: FARM_S3_REGION
  value: {{ .Values.minio.region | quote }}
- name: FARM_RAY_ADDRESS
  value: {{ include "render-farm.rayAddress" . | quote }}
{{- end }}

{{/*
Object storage settings with the store's keys: the control plane only (API, scheduler), which signs what the
render nodes may read and write.
*/}}
{{- define "render-farm.storageEnv" -}}
- name: FARM_MODE
  value: cluster
{{- /* Without it every process falls back to a folder inside its own container and nothing renders. */}}
- name: FARM_STORAGE
  value: s3
- name: FARM_S3_ENDPOINT
  value: {{ include "render-farm.s3Endpoint" . | quote }}
{{ include "render-farm.secretEnv" (dict "ctx" . "name" "FARM_S3_ACCESS_KEY" "key" "s3-access-key") }}
{{ include "render-farm.secretEnv" (dict "ctx" . "name" "FARM_S3_SECRET_KEY" "key" "s3-secret-key") }}
- name: FARM_S3_BUCKET
  value: {{ .Values.minio.bucket | quote }}
- name: FARM_S3_SECURE
  value: {{ include "render-farm.s3Secure" . | quote }}
- name: FARM_S3_REGION
  value: {{ .Values.minio.region | quote }}
- name: FARM_RAY_ADDRESS
  value: {{ include "render-farm.rayAddress" . | quote }}
{{- end }}

{{/*
Full settings of the control plane (API and scheduler): storage plus database, session key and bootstrap token.
Render workers do not get these: they run artists' .blend files and report facts; the scheduler writes the DB.
*/}}
{{- define "render-farm.controlEnv" -}}
{{ include "render-farm.storageEnv" . }}
{{ include "render-farm.secretEnv" (dict "ctx" . "name" "FARM_DATABASE_URL" "key" "database-url") }}
{{ include "render-farm.secretEnv" (dict "ctx" . "name" "FARM_SECRET_KEY" "key" "secret-key") }}
{{ include "render-farm.secretEnv" (dict "ctx" . "name" "FARM_METRICS_TOKEN" "key" "metrics-token") }}
{{ include "render-farm.secretEnv" (dict "ctx" . "name" "FARM_BOOTSTRAP_ADMIN_TOKEN" "key" "bootstrap-admin-token" "optional" true) }}
{{- /* Only the migration Job (`farm migrate`) changes the schema; pods wait for it (docs/operations.md). */}}
- name: FARM_MIGRATE_ON_START
  value: "false"
{{- end }}

{{/* global.extraEnv then the role's extraEnv (may render nothing); pass (dict "ctx" $ "role" .Values.api). */}}
{{- define "render-farm.extraEnv" -}}
{{- $env := concat (default list .ctx.Values.global.extraEnv) (default list .role.extraEnv) }}
{{- if $env }}
{{- toYaml $env }}
{{- end }}
{{- end }}

{{/* Writable scratch space of a read-only-root container: /tmp and the farm user's home. */}}
{{- define "render-farm.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end }}

{{- define "render-farm.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/farm
{{- end }}

{{/* Memory-backed /dev/shm for the Ray object store; pass the size. */}}
{{- define "render-farm.shmVolume" -}}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ . }}
{{- end }}

{{/* A cache volume source from {type, sizeLimit, hostPath}; pass (dict "name" "asset-cache" "spec" ...). */}}
{{- define "render-farm.cacheVolume" -}}
- name: {{ .name }}
  {{- if eq .spec.type "hostPath" }}
  hostPath:
    path: {{ .spec.hostPath }}
    # Must exist and be writable by uid 1000: a directory kubelet created would be root-owned.
    type: Directory
  {{- else if eq .spec.type "persistentVolumeClaim" }}
  persistentVolumeClaim:
    claimName: {{ .claimName }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .spec.sizeLimit }}
  {{- end }}
{{- end }}

{{- define "render-farm.kernelCacheClaim" -}}
{{- default (printf "%s-kernel-cache" (include "render-farm.fullname" .)) .Values.gpuWorkers.kernelCache.persistentVolumeClaim.existingClaim }}
{{- end }}
