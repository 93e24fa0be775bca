#!/bin/sh
# Build the offline wheelhouse on a connected machine: every locked dependency as a wheel for each
# target (Debian 12, CPython 3.11; amd64 and arm64 by default), Cordon's own wheel, the lock, this
# deploy/ folder and SHA256SUMS. Copy the folder to the checkpoint or hub box and run its install.sh.
#
#   deploy/wheelhouse.sh OUT [ARCH ...]      ARCH: x86_64 (amd64), aarch64 (arm64); default both
#
# Environment: PYTHON (default python3, only for pip), GLIBC_MAX (default 36: Debian 12's glibc 2.36),
# WHEELHOUSE_ARCHES (the default ARCH list; tests set it to this machine's alone).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
[ $# -ge 1 ] || { echo "usage: $0 OUT [x86_64|aarch64 ...]" >&2; exit 2; }
out=$1
shift
# shellcheck disable=SC2086
[ $# -ge 1 ] || set -- ${WHEELHOUSE_ARCHES:-x86_64 aarch64}
python=${PYTHON:-python3}
glibc_max=${GLIBC_MAX:-36}
mkdir -p "$out"
for arch in "$@"; do
    case $arch in
        x86_64 | amd64) arch=x86_64 ;;
        aarch64 | arm64) arch=aarch64 ;;
        *) echo "unknown architecture $arch (x86_64 or aarch64)" >&2; exit 2 ;;
    esac
    # pip takes a wheel only for a platform tag it is given: every glibc from Debian 12's down to
    # manylinux2014's (2.17), newest first, so each package's best wheel for the box is chosen.
    platforms=""
    v=$glibc_max
    while [ "$v" -ge 17 ]; do
        platforms="$platforms --platform manylinux_2_${v}_${arch}"
        v=$((v - 1))
    done
    # shellcheck disable=SC2086
    "$python" -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
        --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
        $platforms --platform "manylinux2014_${arch}" --platform "linux_${arch}" \
        --dest "$out" --requirement "$repo/deploy/requirements.lock"
done
# Cordon itself: pure Python, one wheel for every target, built from a copy of the source files (git's
# tracked and new ones when it is a clone), so nothing stale in a build/ folder can ride along.
source=$(mktemp -d)
trap 'rm -rf "$source"' EXIT
if [ -d "$repo/.git" ] || [ -f "$repo/.git" ]; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$source")
else
    (cd "$repo" && tar --exclude=./build --exclude=./.venv -cf - .) | (cd "$source" && tar -xf -)
fi
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$out" "$source"
cp "$repo/deploy/requirements.lock" "$out/requirements.lock"
rm -rf "$out/deploy"
cp -R "$repo/deploy" "$out/deploy"
(cd "$out" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | sed 's|^\./||' | xargs sha256sum > SHA256SUMS)
echo "wheelhouse ready: $out"
