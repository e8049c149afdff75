#!/usr/bin/env bash
# Debian packages the tests use (real services on loopback). Installs only what is missing; needs root.
set -euo pipefail
want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need ffmpeg ffmpeg
need promtool prometheus
# PostgreSQL's pg_ctl/initdb live in /usr/lib/postgresql/<version>/bin, not on PATH (tests/db start a server).
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || want+=(postgresql)
need chromium chromium
# The monitor's screenshots in Chinese need a CJK font (fonts are no command: ask fontconfig).
fc-list 2>/dev/null | grep -qi 'wenquanyi micro hei' || want+=(fonts-wqy-microhei)
if [ ${#want[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${want[*]}; install them with apt-get (needs root)" >&2
  exit 0
fi
echo "system-deps: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
