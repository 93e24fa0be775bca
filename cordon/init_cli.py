"""``cordon init hub|edge``: a commented first configuration with fresh secrets; never over an existing one.

The configuration is itself a secret (it holds the tokens), written 0640 and given to the ``cordon``
group when that group exists, like every secret file beside it: the units pass no secret in their
environment (docs/deploy.md). Certificates and signing keys come from ``cordon pki`` on the CA's machine
and are copied into ``<config folder>/tls``; a box without them gets a signing key made here by the same
code (its public half must then reach the other side).
"""

from __future__ import annotations

import grp
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cordon.pki import SIGNING_KEY, SIGNING_PUB, write_signing_key
from protocols.errors import ConfigError


class InitError(ConfigError, RuntimeError):
    """Nothing was written; the message says why."""


@dataclass(frozen=True, slots=True)
class Written:
    config: Path
    files: list[Path]
    notes: list[str]


def _token() -> str:
    return secrets.token_urlsafe(24)


def _secret_file(path: Path, content: str, group: int | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)
    if group is not None:
        os.chown(path, 0 if os.geteuid() == 0 else -1, group)


def _group(name: str) -> tuple[int | None, list[str]]:
    try:
        return grp.getgrnam(name).gr_gid, []
    except KeyError:
        return None, [f"no group {name!r} here: give the secret files to the service's group yourself"]


def _start(config: Path) -> None:
    if config.exists():
        raise InitError(f"{config} exists: cordon init never overwrites a configuration (move it away first)")
    config.parent.mkdir(parents=True, exist_ok=True)


def _signing(tls: Path, group: int | None, notes: list[str], who: str) -> list[Path]:
    tls.mkdir(parents=True, exist_ok=True)
    if write_signing_key(tls):
        if group is not None:
            os.chown(tls / SIGNING_KEY, -1, group)
            os.chmod(tls / SIGNING_KEY, 0o640)
        notes.append(
            f"made a signing key in {tls} ({who} had none from `cordon pki issue`); "
            f"copy {tls / SIGNING_PUB} to the other side"
        )
        return [tls / SIGNING_KEY, tls / SIGNING_PUB]
    return []


def init_hub(config: Path, data: Path, mqtt_url: str, backup_dir: Path, group_name: str) -> Written:
    config, data, backup_dir = config.absolute(), data.absolute(), backup_dir.absolute()
    _start(config)
    group, notes = _group(group_name)
    etc, tls = config.parent, config.parent / "tls"
    files = _signing(tls, group, notes, "the hub")
    id_secret = etc / "id-secret"
    if not id_secret.exists():
        _secret_file(id_secret, secrets.token_hex(32) + "\n", group)
        files.append(id_secret)
        notes.append(
            f"{id_secret} keys the ID-number hash: give every edge a copy (cordon init edge --id-secret)"
        )
    access_code = _token()
    text = f"""\
# The hub's configuration, written by `cordon init hub`. Every key: docs/configuration.md.
# This file holds secrets (the tokens below): keep it root:{group_name} 0640.
data_dir = "{data}"

[http]
host = "0.0.0.0"                 # 127.0.0.1 behind the front door (deploy/haproxy/cordon.cfg)
port = 8443
cert_file = "{tls}/server.crt"   # from `cordon pki issue cordon-hub --hosts ...`
key_file = "{tls}/server.key"
ca_file = "{tls}/ca.crt"         # edges prove themselves with their client certificates
crl_file = "{tls}/crl.pem"

[mqtt]
url = "{mqtt_url}"
ca_file = "{tls}/ca.crt"
cert_file = "{tls}/client.crt"   # CN cordon-hub, the broker ACL's hub user
key_file = "{tls}/client.key"

[console]
# The bootstrap access code: it opens an admin session so the first admin account can be made.
# Retire it (set it to "") once that account exists: docs/deploy.md, "First start".
token = "{access_code}"  # bootstrap access code: set it to "" once the first admin exists

[feed]
token = "{_token()}"             # only for an edge without a client certificate

[metrics]
token = "{_token()}"             # Prometheus presents it (deploy/prometheus/prometheus.yml)

[signing]
key_file = "{tls}/signing.key"   # the hub signs everything it publishes
keys_dir = "{etc}/edges"         # each checkpoint's key: edges/<checkpoint>/signing.pub
required = false                 # true once every edge signs (docs/protocol.md, Signatures)

[kits]
id_secret_file = "{id_secret}"

[record]
retention_days = 30              # plain reads; backups follow it (cordon backup)
hits_retention_days = 365

[backup]
dir = "{backup_dir}"
keep = 7
"""
    _secret_file(config, text, group)
    return Written(config, [config, *files], notes)


def init_edge(
    config: Path,
    checkpoint: str,
    data: Path,
    mqtt_url: str,
    hub_url: str,
    id_secret: Path | None,
    group_name: str,
) -> Written:
    from protocols.topics import valid_checkpoint_id

    if not valid_checkpoint_id(checkpoint):
        raise InitError(f"{checkpoint!r} is not a checkpoint id (such as SD-DZ-001)")
    config, data = config.absolute(), data.absolute()
    _start(config)
    group, notes = _group(group_name)
    etc, tls = config.parent, config.parent / "tls"
    files = _signing(tls, group, notes, "this edge")
    secret_line = '# id_secret_file = ""          # the hub\'s id-secret: cordon init edge --id-secret FILE'
    if id_secret is not None:
        copy = etc / "id-secret"
        if not copy.exists():
            _secret_file(copy, id_secret.read_text(encoding="utf-8"), group)
            files.append(copy)
        secret_line = f'id_secret_file = "{copy}"'
    else:
        notes.append(
            "no --id-secret: the tablet cannot save quick-test results until kits.id_secret_file is set"
        )
    text = f"""\
# The edge's configuration for checkpoint {checkpoint}, written by `cordon init edge`.
# Every key: docs/configuration.md; cameras: docs/cameras.md. It holds secrets: root:{group_name} 0640.
checkpoint = "{checkpoint}"      # = the CN of its client certificate (its MQTT user name)
data_dir = "{data}"

[http]                           # the tablet app and the camera endpoints
host = "0.0.0.0"
port = 8081
cert_file = "{tls}/server.crt"   # SAN = the address the tablets use
key_file = "{tls}/server.key"

[mqtt]
url = "{mqtt_url}"
ca_file = "{tls}/ca.crt"
cert_file = "{tls}/client.crt"
key_file = "{tls}/client.key"

[hub]                            # watchlist snapshots over HTTPS, by the client certificate
url = "{hub_url}"
ca_file = "{tls}/ca.crt"
cert_file = "{tls}/client.crt"
key_file = "{tls}/client.key"

[tablet]
# The checkpoint's shared access code: a fallback for a checkpoint without officer accounts.
token = "{_token()}"

[metrics]
token = "{_token()}"

[signing]
key_file = "{tls}/signing.key"               # every message the edge publishes is signed
hub_public_key_file = "{tls}/hub-signing.pub"  # the hub's signing.pub
required = false                             # true once the hub signs (it does from cordon init hub)

[kits]
{secret_line}

[outbox]
max_bytes = 2147483648           # 2 GiB of unacknowledged events, then the oldest plain reads go

[evidence]
max_bytes = 21474836480          # 20 GiB of pictures (docs/deploy.md, disk sizing)
retention_days = 30

# One camera to start from: point it at https://THIS-BOX:8081/api/v1/cameras/lane-1/reads
[[cameras]]
id = "lane-1"
kind = "json"
token = "{_token()}"
"""
    _secret_file(config, text, group)
    return Written(config, [config, *files], notes)
