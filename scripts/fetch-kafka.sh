#!/usr/bin/env bash
# Resolve Apache Kafka's broker jars from Maven Central into the cache (outside git).
# usage: scripts/fetch-kafka.sh [LIB_DIR]     env: GS_KAFKA_VERSION (default 3.9.1), GS_CACHE
set -euo pipefail
VERSION="${GS_KAFKA_VERSION:-3.9.1}"
CACHE="${GS_CACHE:-$HOME/.cache/gridsentinel}"
LIB="${1:-$CACHE/kafka-$VERSION/libs}"
here="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$LIB/.complete" ]; then echo "kafka $VERSION jars already in $LIB"; exit 0; fi
command -v mvn >/dev/null || { echo "fetch-kafka: 'mvn' not found; install Maven (apt-get install maven) and retry" >&2; exit 1; }
command -v java >/dev/null || { echo "fetch-kafka: 'java' not found; install a JDK 17 and retry" >&2; exit 1; }
echo "fetch-kafka: resolving kafka_2.13:$VERSION and its runtime dependencies from Maven Central into $LIB"
rm -rf "$LIB"; mkdir -p "$LIB"
mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIB"
touch "$LIB/.complete"
echo "fetch-kafka: $(ls "$LIB"/*.jar | wc -l) jars, $(du -sh "$LIB" | cut -f1)"
