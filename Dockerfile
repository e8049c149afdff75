# syntax=docker/dockerfile:1
# The one render-farm image: `farm api`, `farm scheduler`, and the Ray head and worker pods (KubeRay runs
# `ray start` in it, so the farm's worker actors import the same code). Build: docker build -t render-farm .
FROM python:3.11-slim-bookworm

# Runtime libraries of the bpy 5.0.1 wheel (X11/GL/EGL client libraries; Blender runs headless but links them),
# ffmpeg for video outputs, and wget, which KubeRay's default exec probes call inside Ray pods.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libx11-6 libxi6 libxxf86vm1 libxfixes3 libxrender1 libgl1 libegl1 libxkbcommon0 libsm6 libice6 \
        ffmpeg wget \
    && rm -rf /var/lib/apt/lists/*

# uid/gid 1000 is what the Helm chart's securityContext runs as. Cache directories exist so that volumes mount
# over paths the user owns even on a read-only root filesystem.
RUN groupadd --gid 1000 farm \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/farm --shell /bin/bash farm \
    && mkdir -p /var/cache/farm/assets /var/cache/farm/kernels \
    && chown -R farm:farm /var/cache/farm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Installed into the system interpreter (/usr/local), not a venv: KubeRay starts Ray through `bash -l`, whose
# login profile resets PATH to the system directories, where `ray` and `farm` then are. The source is bind-mounted
# for the build only, so it leaves no layer behind. Dependencies come from the lock file, every file checked
# against its sha256 (scripts/lock.sh refreshes it); the farm itself is then installed without resolving anything.
RUN --mount=type=bind,target=/tmp/src,rw \
    pip install --require-hashes --no-deps -r /tmp/src/requirements.lock \
    && pip install --no-deps /tmp/src \
    && pip check

ENV HOME=/home/farm

USER 1000:1000
WORKDIR /home/farm
EXPOSE 8321
CMD ["farm", "api", "--host", "0.0.0.0", "--port", "8321"]
