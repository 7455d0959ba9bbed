#!/usr/bin/env bash
# Build Mosquitto 2.0.21 (broker, mosquitto_passwd, mosquitto_pub, mosquitto_sub) from Debian trixie's
# source tarball, apply scripts/mosquitto-<version>-*.patch, and cache the binaries outside git.
# Bookworm's 2.0.11 (and unpatched 2.0.21) crash once offline sessions restored from persistence
# expire after a password-file reload; see docs/infra.md. The clients are linked statically against
# libmosquitto, so nothing goes to /usr. OUT_DIR/BUILD-ID names the version and the patches built in;
# a different BUILD-ID (patches changed) means rebuild.
#
# usage: scripts/build-mosquitto.sh [OUT_DIR]
#        scripts/build-mosquitto.sh --build-id    (print the BUILD-ID a build would have, and exit)
# env:   GS_CACHE (default ~/.cache/gridsentinel), GS_BUILD_JOBS (default 2)
set -euo pipefail

VERSION=2.0.21
SHA256=551daff96cd0675faf888f8881536177934424ecc45924fecf94cffe207f6e81
URL="http://deb.debian.org/debian/pool/main/m/mosquitto/mosquitto_${VERSION}.orig.tar.gz"
CACHE="${GS_CACHE:-$HOME/.cache/gridsentinel}"
OUT="${1:-$CACHE/bin/mosquitto-$VERSION}"
BUILD="$CACHE/build/mosquitto-$VERSION"
TARBALL="$CACHE/build/mosquitto_${VERSION}.orig.tar.gz"
TOOLS=(mosquitto mosquitto_passwd mosquitto_pub mosquitto_sub)
HERE="$(cd "$(dirname "$0")" && pwd)"
shopt -s nullglob; LC_ALL=C
PATCHES=("$HERE"/mosquitto-"$VERSION"-*.patch)   # in name order; gridsentinel.stack computes the same id
shopt -u nullglob
BUILD_ID="$VERSION"
[ ${#PATCHES[@]} -eq 0 ] || BUILD_ID="$VERSION+$(cat "${PATCHES[@]}" | sha256sum | cut -c1-12)"
[ "${1:-}" != "--build-id" ] || { echo "$BUILD_ID"; exit 0; }
START=$(date +%s)

log() { printf '[build-mosquitto %4ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }

built=1
for tool in "${TOOLS[@]}"; do [ -x "$OUT/$tool" ] || built=0; done
[ "$(cat "$OUT/BUILD-ID" 2>/dev/null)" = "$BUILD_ID" ] || built=0
if [ $built = 1 ]; then
  log "already built: $OUT ($BUILD_ID)"
  exit 0
fi

# Build dependencies: a C compiler, make and OpenSSL's headers (TLS, and mosquitto_passwd's hashing).
have_ssl_headers() { echo '#include <openssl/ssl.h>' | cc -E - >/dev/null 2>&1; }
missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
command -v curl >/dev/null || missing+=(curl)
command -v patch >/dev/null || missing+=(patch)
if ! command -v cc >/dev/null || ! have_ssl_headers; then missing+=(libssl-dev); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "build-mosquitto: missing build dependencies; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  log "installing build dependencies from Debian: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$CACHE/build" "$(dirname "$OUT")"
if [ ! -f "$TARBALL" ] || ! echo "$SHA256  $TARBALL" | sha256sum -c --status; then
  log "downloading $URL"
  curl -fsSL --retry 3 -o "$TARBALL.tmp" "$URL"
  mv "$TARBALL.tmp" "$TARBALL"
fi
if ! echo "$SHA256  $TARBALL" | sha256sum -c --status; then
  echo "build-mosquitto: checksum mismatch for $TARBALL (expected sha256 $SHA256)" >&2
  rm -f "$TARBALL"
  exit 1
fi
log "source verified (sha256 $SHA256)"

rm -rf "$BUILD"
mkdir -p "$BUILD"
tar -xzf "$TARBALL" -C "$BUILD" --strip-components=1
cd "$BUILD"
for p in "${PATCHES[@]}"; do
  log "applying $(basename "$p")"
  patch -s -p1 <"$p"
done

# Only what the stack runs: no docs (xsltproc), no cJSON (dynsec plugin, mosquitto_ctrl, JSON output of
# mosquitto_sub), no websockets; libmosquitto as a static library only, so the clients need no rpath.
flags=(WITH_DOCS=no WITH_CJSON=no WITH_WEBSOCKETS=no WITH_SRV=no WITH_TLS=yes WITH_SYSTEMD=no
       WITH_SHARED_LIBRARIES=no WITH_STATIC_LIBRARIES=yes)
jobs="${GS_BUILD_JOBS:-2}"
log "building with make -j$jobs ${flags[*]} (about 15 s on 2 cores)"
for dir in lib client apps/mosquitto_passwd src; do
  log "  make -C $dir"
  make -s -j"$jobs" -C "$dir" "${flags[@]}" >"$BUILD/make-${dir//\//-}.log" 2>&1 || {
    tail -30 "$BUILD/make-${dir//\//-}.log" >&2
    echo "build-mosquitto: make -C $dir failed (log: $BUILD/make-${dir//\//-}.log)" >&2
    exit 1
  }
done

rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
install -m 0755 src/mosquitto apps/mosquitto_passwd/mosquitto_passwd client/mosquitto_pub client/mosquitto_sub \
  "$OUT.tmp/"
# Both print their usage and exit non-zero: check the text, not the status.
version=$("$OUT.tmp/mosquitto" -h 2>&1 || true)
[[ "$version" == *"mosquitto version $VERSION"* ]] \
  || { echo "build-mosquitto: built broker does not report $VERSION: ${version%%$'\n'*}" >&2; exit 1; }
usage=$("$OUT.tmp/mosquitto_pub" --help 2>&1 || true)
[[ "$usage" == *"mosquitto_pub version $VERSION"* ]] \
  || { echo "build-mosquitto: built mosquitto_pub does not run: ${usage%%$'\n'*}" >&2; exit 1; }
echo "$BUILD_ID" >"$OUT.tmp/BUILD-ID"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "built $OUT (${TOOLS[*]}; $BUILD_ID)"
