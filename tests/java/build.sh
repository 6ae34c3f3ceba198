#!/usr/bin/env bash
# Builds tests/java/build/ for the acceptance tests: the AWS SDK for Java v2 jar and WhoAmI.java compiled against
# it, and build/classpath (what `java -cp` needs). Run by tests/run.sh; does nothing when this script and
# WhoAmI.java are unchanged since the last build (their hash is kept in build/key). README.md says why the SDK
# comes from a PyPI wheel and not from Maven Central.
set -euo pipefail
PY=${PYTHON:-python3}
case $PY in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # a relative path, before the cd
cd "$(dirname "$0")"
WHEEL=sagemaker-feature-store-pyspark==2.2.2
JAR=feature_store_pyspark/jars/sagemaker-feature-store-spark-sdk-3.1.jar  # the smallest of its five; SDK 2.55.9
SHA256=c51032697f9e94148affe1043e74b845f21b78c6d46af25c463749d64130f124  # of that jar
SHADE=smfs.shaded.  # the package prefix that jar's maven-shade relocation put before software.amazon.awssdk
SLF4J=/usr/share/java  # Debian's libslf4j-java: the SDK logs through slf4j, which the jar leaves out

key=$(cat build.sh WhoAmI.java | sha256sum | cut -d' ' -f1)
if [ -f build/key ] && [ "$(cat build/key)" = "$key" ]; then
  exit 0
fi
rm -rf build
mkdir -p build/src build/classes
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-cache-dir --no-deps --only-binary=:all: -d "$tmp" "$WHEEL"
"$PY" - "$tmp"/*.whl "$JAR" build/aws-sdk-java-v2.jar <<'PY'
import shutil
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$SHA256  build/aws-sdk-java-v2.jar" | sha256sum --check --quiet
sed "s/software\.amazon\.awssdk\./${SHADE}software.amazon.awssdk./g" WhoAmI.java >build/src/WhoAmI.java
cp="$PWD/build/aws-sdk-java-v2.jar:$SLF4J/slf4j-api.jar:$SLF4J/slf4j-nop.jar"
javac -d build/classes -cp "$cp" build/src/WhoAmI.java
echo "$PWD/build/classes:$cp" >build/classpath
echo "$key" >build/key
