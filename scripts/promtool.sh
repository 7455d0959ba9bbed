#!/usr/bin/env bash
# Build Prometheus's promtool from its Go module into ~/.cache/gridsentinel/bin/promtool (optional: the
# unit tests run `promtool check config|rules` and `promtool test rules` on ops/prometheus/ when it is there).
#
# `go install github.com/prometheus/prometheus/cmd/promtool@VERSION` refuses the module ("The go.mod file
# for the module providing named packages contains one or more replace directives"), so the module is
# downloaded through the Go module proxy and built as the main module, from a writable copy.
set -euo pipefail
VERSION="${PROMTOOL_MODULE_VERSION:-v0.315.1}"  # Prometheus v3.15.1
CACHE="${GS_CACHE:-$HOME/.cache/gridsentinel}"
OUT="$CACHE/bin/promtool"
if [[ -x "$OUT" ]]; then
  echo "promtool: already built: $OUT"
  exit 0
fi
command -v go >/dev/null || { echo "promtool: needs Go (https://go.dev/doc/install)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="$(go mod download -json "github.com/prometheus/prometheus@$VERSION" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
cp -r "$src" "$work/prometheus"
chmod -R u+w "$work/prometheus"
mkdir -p "$CACHE/bin"
echo "promtool: building $VERSION (several minutes on 2 cores) ..."
(cd "$work/prometheus" && GOWORK=off nice -n 10 go build -o "$OUT.tmp" ./cmd/promtool)
mv "$OUT.tmp" "$OUT"
"$OUT" --version | head -1
