{{/*
Demand-driven scaling (issue 15; scheduler/demand.py): with the KubeRay autoscaler on, the scheduler asks Ray for
the slots its queue needs (one bundle per slot: a whole CPU worker pod per CPU slot, one GPU per GPU slot), capped
by what the worker groups can reach, and releases slots idle for scheduler.slotIdleTimeoutSeconds so the
autoscaler can remove their pods after head.autoscalerIdleTimeoutSeconds.
*/}}
{{- define "render-farm.cpuPodCores" -}}
{{- $cpu := toString .Values.cpuWorkers.resources.limits.cpu -}}
{{- if hasSuffix "m" $cpu -}}
{{- div (trimSuffix "m" $cpu | int64) 1000 -}}
{{- else -}}
{{- $cpu | float64 | floor | int64 -}}
{{- end -}}
{{- end }}

{{- define "render-farm.autoscaleEnv" -}}
{{- if .Values.head.enableInTreeAutoscaling }}
- name: FARM_AUTOSCALE
  value: "true"
- name: FARM_SLOT_IDLE_TIMEOUT_S
  value: {{ .Values.scheduler.slotIdleTimeoutSeconds | toString | quote }}
- name: FARM_CPU_SLOT_CORES
  value: {{ include "render-farm.cpuPodCores" . | quote }}
- name: FARM_AUTOSCALE_MAX_CPU_SLOTS
  value: {{ ternary .Values.cpuWorkers.maxReplicas 0 .Values.cpuWorkers.enabled | int64 | toString | quote }}
- name: FARM_AUTOSCALE_MAX_GPU_SLOTS
  value: {{ ternary (mul .Values.gpuWorkers.maxReplicas .Values.gpuWorkers.gpusPerPod) 0 .Values.gpuWorkers.enabled | int64 | toString | quote }}
{{- end }}
{{- end }}
