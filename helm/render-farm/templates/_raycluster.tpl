{{/*
One RayCluster worker group (CPU or GPU); pass (dict "ctx" $ "role" .Values.cpuWorkers "gpu" false).
GPU groups request and limit the GPUs, pass num-gpus to `ray start`, and mount the persistent kernel cache.
*/}}
{{- define "render-farm.rayWorkerGroup" -}}
{{- $ctx := .ctx }}
{{- $role := .role }}
{{- $gpu := .gpu }}
{{- $component := ternary "gpu-worker" "cpu-worker" $gpu }}
{{- $params := dict }}
{{- if $gpu }}
{{- $_ := set $params "num-gpus" (toString (int $role.gpusPerPod)) }}
{{- end }}
{{- $params = mergeOverwrite $params (deepCopy (default dict $role.rayStartParams)) }}
{{- $resources := deepCopy $role.resources }}
{{- if $gpu }}
{{- $_ := set $resources "requests" (mergeOverwrite (default dict $resources.requests) (dict $role.gpuResourceName (toString (int $role.gpusPerPod)))) }}
{{- $_ := set $resources "limits" (mergeOverwrite (default dict $resources.limits) (dict $role.gpuResourceName (toString (int $role.gpusPerPod)))) }}
{{- end }}
- groupName: {{ $role.groupName }}
  replicas: {{ $role.replicas }}
  minReplicas: {{ $role.minReplicas }}
  maxReplicas: {{ $role.maxReplicas }}
  rayStartParams:
    {{- range $k := keys $params | sortAlpha }}
    {{ $k }}: {{ get $params $k | toString | quote }}
    {{- end }}
  template:
    metadata:
      labels:
        {{- include "render-farm.podLabels" (dict "ctx" $ctx "component" $component) | nindent 8 }}
      {{- with $ctx.Values.global.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- include "render-farm.podCommon" $ctx | nindent 6 }}
      terminationGracePeriodSeconds: {{ $role.terminationGracePeriodSeconds }}
      {{- if and $gpu $role.runtimeClassName }}
      runtimeClassName: {{ $role.runtimeClassName }}
      {{- end }}
      containers:
        - name: ray-worker
          image: {{ include "render-farm.image" $ctx }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          securityContext:
            {{- include "render-farm.containerSecurityContext" (dict "ctx" $ctx "role" $role) | nindent 12 }}
          env:
            {{- include "render-farm.nodeEnv" $ctx | nindent 12 }}
            {{- with include "render-farm.rayAuthEnv" $ctx }}
            {{- . | nindent 12 }}
            {{- end }}
            - name: FARM_WORKER_CACHE_DIR
              value: /var/cache/farm/assets
            {{- if $gpu }}
            - name: NVIDIA_DRIVER_CAPABILITIES
              value: {{ $role.driverCapabilities | quote }}
            # Cycles keeps compiled kernels under $XDG_CACHE_HOME/cycles/kernels; the CUDA driver keeps PTX JIT
            # output in CUDA_CACHE_PATH and OptiX its pipelines in OPTIX_CACHE_PATH. All on the persistent volume.
            - name: XDG_CACHE_HOME
              value: {{ printf "%s/xdg" $role.kernelCache.mountPath | quote }}
            - name: CUDA_CACHE_PATH
              value: {{ printf "%s/cuda" $role.kernelCache.mountPath | quote }}
            - name: CUDA_CACHE_MAXSIZE
              value: {{ $role.kernelCache.cudaCacheMaxSize | int64 | toString | quote }}
            - name: OPTIX_CACHE_PATH
              value: {{ printf "%s/optix" $role.kernelCache.mountPath | quote }}
            {{- end }}
            {{- with include "render-farm.extraEnv" (dict "ctx" $ctx "role" $role) }}
            {{- . | nindent 12 }}
            {{- end }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          volumeMounts:
            {{- include "render-farm.scratchMounts" $ctx | nindent 12 }}
            - name: dshm
              mountPath: /dev/shm
            - name: asset-cache
              mountPath: /var/cache/farm/assets
            {{- if $gpu }}
            - name: kernel-cache
              mountPath: {{ $role.kernelCache.mountPath }}
            {{- end }}
      volumes:
        {{- include "render-farm.scratchVolumes" $ctx | nindent 8 }}
        {{- include "render-farm.shmVolume" $role.shmSize | nindent 8 }}
        {{- include "render-farm.cacheVolume" (dict "name" "asset-cache" "spec" $role.assetCache) | nindent 8 }}
        {{- if $gpu }}
        {{- include "render-farm.cacheVolume" (dict "name" "kernel-cache" "spec" $role.kernelCache "claimName" (include "render-farm.kernelCacheClaim" $ctx)) | nindent 8 }}
        {{- end }}
      {{- with $role.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $role.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $role.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
