#!/bin/sh
# Install (or upgrade) Cordon on a Debian 12 box from an offline wheelhouse; run it again at will.
#
#   sh WHEELHOUSE/deploy/install.sh [--root DIR] [--python PYTHON]
#
# Makes, when missing: the `cordon` system user and group; /etc/cordon and /etc/cordon/tls
# (root:cordon 0750: the configuration and the keys it names are the secrets, readable by the
# service only); /var/lib/cordon (cordon 0750, the services' StateDirectory) and /var/backups/cordon;
# the release in /opt/cordon/releases/<version>-<wheel hash> (a virtual environment installed with
# pip --no-index --require-hashes from the wheelhouse), /opt/cordon/current pointing at it; the
# systemd units, drop-ins and journald's settings. It enables and starts nothing (docs/deploy.md).
# --root DIR does all of it under DIR (for tests and images): the user goes into DIR/etc/passwd.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
wheelhouse=$(dirname "$here")
root=""
python=/usr/bin/python3
while [ $# -gt 0 ]; do
    case $1 in
        --root) root=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        *) echo "usage: $0 [--root DIR] [--python PYTHON]" >&2; exit 2 ;;
    esac
done
say() { echo "install: $*"; }

# 1. The wheelhouse is what was built: every file as SHA256SUMS lists it.
(cd "$wheelhouse" && sha256sum --check --quiet --strict SHA256SUMS) || {
    echo "install: $wheelhouse does not match its SHA256SUMS: copy it again" >&2
    exit 1
}
wheel=$(cd "$wheelhouse" && ls cordon-*-py3-none-any.whl | tail -n 1)
[ -n "$wheel" ] || { echo "install: no cordon wheel in $wheelhouse" >&2; exit 1; }
version=$(echo "$wheel" | cut -d- -f2)
digest=$(sha256sum "$wheelhouse/$wheel" | cut -c1-12)
release="$version-$digest"

# 2. The user and the folders.
prefix_args=""
if [ -n "$root" ]; then
    prefix_args="--prefix $root"
    install -d "$root/etc"
    for db in passwd group shadow gshadow; do # a bare root gets the files useradd needs
        [ -e "$root/etc/$db" ] || grep "^root:" "/etc/$db" > "$root/etc/$db"
    done
fi
if ! grep -q '^cordon:' "$root/etc/group" 2>/dev/null; then
    # shellcheck disable=SC2086
    groupadd --system $prefix_args cordon
    say "group cordon made"
fi
if ! grep -q '^cordon:' "$root/etc/passwd" 2>/dev/null; then
    # shellcheck disable=SC2086
    useradd --system $prefix_args --gid cordon --home-dir /var/lib/cordon --no-create-home \
        --shell /usr/sbin/nologin --comment "Cordon services" cordon
    say "user cordon made"
fi
uid=$(grep '^cordon:' "$root/etc/passwd" | cut -d: -f3)
gid=$(grep '^cordon:' "$root/etc/group" | cut -d: -f3)
folder() { # folder PATH MODE OWNER:GROUP (numeric, so it works under --root)
    install -d -m "$2" "$root$1"
    chown "$3" "$root$1"
    chmod "$2" "$root$1"
}
folder /etc/cordon 0750 "0:$gid"
folder /etc/cordon/tls 0750 "0:$gid"
folder /var/lib/cordon 0750 "$uid:$gid"
folder /var/backups/cordon 0750 "$uid:$gid"
folder /opt/cordon/releases 0755 0:0

# 3. The release: its own virtual environment, only from the wheelhouse, every wheel checked by hash.
target="$root/opt/cordon/releases/$release"
if [ -f "$target/.complete" ]; then
    say "release $release already installed"
else
    rm -rf "$target"
    "$python" -m venv "$target"
    "$target/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
        --find-links "$wheelhouse" --require-hashes --requirement "$wheelhouse/requirements.lock"
    "$target/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
        "$wheelhouse/$wheel"
    touch "$target/.complete"
    say "release $release installed in /opt/cordon/releases/$release"
fi
previous=$(readlink "$root/opt/cordon/current" 2>/dev/null || true)
if [ "$previous" != "releases/$release" ]; then
    ln -sfn "releases/$release" "$root/opt/cordon/current.new"
    mv -T "$root/opt/cordon/current.new" "$root/opt/cordon/current"
    [ -z "$previous" ] || echo "$previous" > "$root/opt/cordon/previous"
    say "/opt/cordon/current -> releases/$release${previous:+ (was $previous)}"
fi

# 4. Units, drop-ins (the broker's and the front door's) and journald's settings.
install -d "$root/etc/systemd/system" "$root/etc/systemd/system/mosquitto.service.d" \
    "$root/etc/systemd/system/haproxy.service.d" "$root/etc/systemd/journald.conf.d"
for unit in cordon-hub.service cordon-edge.service cordon-backup.service cordon-backup.timer; do
    install -m 0644 "$here/systemd/$unit" "$root/etc/systemd/system/$unit"
done
install -m 0644 "$here/systemd/mosquitto.service.d/cordon.conf" "$root/etc/systemd/system/mosquitto.service.d/cordon.conf"
install -m 0644 "$here/systemd/haproxy.service.d/cordon.conf" "$root/etc/systemd/system/haproxy.service.d/cordon.conf"
install -m 0644 "$here/journald/cordon.conf" "$root/etc/systemd/journald.conf.d/cordon.conf"
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl try-restart systemd-journald.service || true
fi
say "done: release $release; next: cordon init (docs/deploy.md)"
