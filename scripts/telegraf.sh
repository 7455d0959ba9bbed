#!/usr/bin/env bash
# Build Telegraf (InfluxData's agent, Go) into ~/.cache/gridsentinel/bin/telegraf-VERSION, for
# `gridsentinel bench ingest --peer telegraf` (optional: nothing else uses it, and neither the set-up nor CI
# builds it). Its module has no replace directives, so `go install` builds it from the Go module proxy:
# about 16 min cold on 2 cores and a ~400 MB binary; the module cache (~/go/pkg/mod) makes a rebuild faster.
set -euo pipefail
VERSION="${TELEGRAF_VERSION:-1.37.2}"  # keep in step with gridsentinel/bench/telegraf_peer.py
CACHE="${GS_CACHE:-$HOME/.cache/gridsentinel}"
OUT="$CACHE/bin/telegraf-$VERSION"
if [[ -x "$OUT" ]]; then
  echo "telegraf: already built: $OUT"
  exit 0
fi
command -v go >/dev/null || { echo "telegraf: needs Go (https://go.dev/doc/install)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$CACHE/bin"
echo "telegraf: building v$VERSION with go install (about 16 min on 2 cores; progress every minute) ..."
start=$SECONDS
( GOBIN="$work" nice -n 10 go install "github.com/influxdata/telegraf/cmd/telegraf@v$VERSION" ) &
build=$!
while kill -0 "$build" 2>/dev/null; do
  sleep 60
  kill -0 "$build" 2>/dev/null && echo "telegraf: still building ($(( (SECONDS - start) / 60 )) min)"
done
wait "$build"
mv "$work/telegraf" "$OUT"
echo "telegraf: built in $(( SECONDS - start )) s: $OUT"
"$OUT" --version
