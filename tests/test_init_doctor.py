"""``cordon init`` writes a configuration that loads, with fresh secrets, and never over one; ``cordon doctor``
says in plain words what is wrong, with the exit status monitoring expects (0 ok, 1 warn, 2 fail), against a
real TLS broker (deploy/mosquitto/mosquitto.conf) and a real hub."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from central.settings import load_settings as load_hub
from edge.settings import load_settings as load_edge
from tests.support import Mosquitto, Ring, Service, running
from tests.support import wait_port as wait_for_port

pytestmark = pytest.mark.system


def cordon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cordon", *args], capture_output=True, text=True, timeout=120
    )


def copy_identity(ring: Ring, name: str, tls: Path) -> None:
    tls.mkdir(parents=True, exist_ok=True)
    folder = ring.pki.root / name
    for f in folder.iterdir():
        (tls / f.name).write_bytes(f.read_bytes())
    (tls / "crl.pem").write_bytes((ring.pki.root / "crl.pem").read_bytes())


def test_init_writes_fresh_secrets_that_load_and_refuses_to_overwrite(tmp_path):
    hub_conf = tmp_path / "a" / "hub.toml"
    done = cordon("init", "hub", "--config", str(hub_conf), "--data", str(tmp_path / "a" / "data"))
    assert done.returncode == 0, done.stderr
    settings = load_hub(hub_conf)
    assert len(settings.console.token) >= 24 and len(settings.feed.token) >= 24
    assert settings.console.token != settings.feed.token != settings.metrics.token
    assert Path(settings.kits.id_secret_file).stat().st_mode & 0o777 == 0o640
    assert hub_conf.stat().st_mode & 0o777 == 0o640
    assert Path(settings.signing.key_file).is_file()  # made here: no PKI folder was copied in
    assert "# The bootstrap access code" in hub_conf.read_text()

    other = tmp_path / "b" / "hub.toml"
    assert cordon("init", "hub", "--config", str(other), "--data", str(tmp_path / "b")).returncode == 0
    assert load_hub(other).console.token != settings.console.token  # fresh each time

    before = hub_conf.read_bytes()
    again = cordon("init", "hub", "--config", str(hub_conf))
    assert again.returncode == 1 and "never overwrites" in again.stderr
    assert hub_conf.read_bytes() == before

    edge_conf = tmp_path / "e" / "edge.toml"
    done = cordon(
        "init", "edge", "--checkpoint", "SD-DZ-001", "--config", str(edge_conf),
        "--id-secret", settings.kits.id_secret_file,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    edge = load_edge(edge_conf)
    assert edge.checkpoint == "SD-DZ-001" and edge.cameras[0].token
    assert Path(edge.kits.id_secret_file).read_text() == Path(settings.kits.id_secret_file).read_text()
    bad = cordon("init", "edge", "--checkpoint", "no good", "--config", str(tmp_path / "x.toml"))
    assert bad.returncode == 1 and "not a checkpoint id" in bad.stderr


def doctor(side: str, conf: Path) -> tuple[int, dict[str, tuple[str, str]]]:
    done = cordon("doctor", side, "--config", str(conf), "--json", "--timeout", "10")
    checks = {c["what"]: (c["level"], c["message"]) for c in json.loads(done.stdout)}
    return done.returncode, checks


def retarget(conf: Path, **replace: str) -> None:
    text = conf.read_text()
    for old, new in replace.items():
        text = re.sub(old, new, text)
    conf.write_text(text)


async def test_doctor_on_a_hub_before_and_after_its_start_and_what_it_catches(tmp_path):
    ring = Ring.create(tmp_path / "pki", ["SD-DZ-001"])
    broker = Mosquitto(tmp_path / "broker", tls=ring.broker())
    conf = tmp_path / "etc" / "hub.toml"
    copy_identity(ring, "cordon-hub", tmp_path / "etc" / "tls")
    assert cordon("init", "hub", "--config", str(conf), "--data", str(tmp_path / "data"),
                  "--mqtt-url", broker.url).returncode == 0  # fmt: skip
    from cordon.testing import free_port

    port = free_port()
    retarget(conf, **{'host = "0.0.0.0"': 'host = "127.0.0.1"', "port = 8443": f"port = {port}"})
    (tmp_path / "etc" / "edges").mkdir()

    status, checks = doctor("hub", conf)  # no broker yet, no hub
    assert status == 2 and checks["broker"][0] == "FAIL" and "cannot reach" in checks["broker"][1]
    assert checks["config"][0] == checks["files"][0] == "ok"
    assert checks["http.cert_file"][0] == "ok" and "CN cordon-hub" in checks["http.cert_file"][1]
    assert checks["store"][0] == "warn" and "first start" in checks["store"][1]
    assert checks["port"][0] == "warn" and "not running" in checks["port"][1]

    broker.start()
    await broker.ready()
    hub = Service("hub", ["hub", "--config", str(conf)], tmp_path / "hubwork", port, scheme="https")
    hub.workdir.mkdir()
    with running(broker, hub):
        hub.start()
        wait_for_port(port)
        # The port answers before the hub has reached its broker and stored its schema: ask until it has.
        deadline = time.monotonic() + 30
        status, checks = doctor("hub", conf)
        while (checks["broker"][0], checks["store"][0]) != ("ok", "ok") and time.monotonic() < deadline:
            time.sleep(0.2)
            status, checks = doctor("hub", conf)
        assert checks["broker"][0] == "ok", checks["broker"]
        assert checks["store"][0] == "ok" and "schema current" in checks["store"][1]
        assert checks["port"] == ("ok", f"cordon-hub answers on 127.0.0.1:{port}: ok")
        assert status == max({"ok": 0, "warn": 1, "FAIL": 2}[lvl] for lvl, _ in checks.values())
        assert all(lvl == "ok" for what, (lvl, _) in checks.items() if what != "clock"), checks
        # The broker gone, the hub is degraded: its health answers 503, and the doctor still reads why.
        broker.stop()
        deadline = time.monotonic() + 15
        status, checks = doctor("hub", conf)
        while "degraded" not in checks["port"][1] and time.monotonic() < deadline:
            status, checks = doctor("hub", conf)
        assert checks["port"][0] == "warn" and "degraded: broker link" in checks["port"][1], checks["port"]

    # What it catches: a key that is not the certificate's, a missing file, a certificate near its end.
    tls = tmp_path / "etc" / "tls"
    (tls / "client.key").write_bytes((ring.pki.root / "SD-DZ-001" / "client.key").read_bytes())
    (tls / "crl.pem").unlink()
    status, checks = doctor("hub", conf)
    assert status == 2
    assert checks["mqtt.cert_file"] == ("FAIL", f"{tls}/client.crt and {tls}/client.key are not a pair")
    assert checks["files"][0] == "FAIL" and f"http.crl_file = {tls}/crl.pem" in checks["files"][1]

    ring.pki.issue("short", ["127.0.0.1"], days=10)
    for name in ("server.crt", "server.key"):
        (tls / name).write_bytes((ring.pki.root / "short" / name).read_bytes())
    _, checks = doctor("hub", conf)
    assert checks["http.cert_file"][0] == "warn" and re.search(
        r"ends in (9|10) days", checks["http.cert_file"][1]
    )


def test_doctor_on_a_broken_configuration_says_which_key(tmp_path):
    conf = tmp_path / "edge.toml"
    conf.write_text('checkpoint = "SD-DZ-001"\n[mqtt]\nurll = "x"\n')
    done = cordon("doctor", "edge", "--config", str(conf))
    assert done.returncode == 2
    assert "FAIL  config:" in done.stdout and "urll" in done.stdout


def test_doctor_checks_a_hub_store_on_postgresql(tmp_path, pg_dsn):
    """With ``[store] backend = "postgresql"`` the store check is the database's: reachable with the password
    from its file, its schema as this release knows it; a password written into the DSN is never shown."""
    import psycopg
    import psycopg.conninfo

    from central.record.postgresql.connections import with_password
    from central.record.postgresql.schema import migrate
    from cordon.doctor import Doctor

    parts = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    password = parts.pop("password")
    (tmp_path / "db-password").write_text(password + "\n", encoding="utf-8")

    def check(dsn: str) -> tuple[str, str]:
        conf = tmp_path / "hub.toml"
        conf.write_text(
            f'data_dir = "{tmp_path / "data"}"\n[store]\nbackend = "postgresql"\n'
            f'dsn = {json.dumps(dsn)}\npassword_file = "{tmp_path / "db-password"}"\n',
            encoding="utf-8",
        )
        doctor = Doctor("hub", str(conf), timeout_s=3)
        doctor.hub_store(load_hub(str(conf)))
        (c,) = doctor.checks
        return c.level, c.message

    dsn = psycopg.conninfo.make_conninfo(**parts)
    level, message = check(dsn)
    assert level == "warn" and "empty" in message and "first start" in message
    with psycopg.connect(with_password(dsn, password), autocommit=True) as conn:
        migrate(conn)
    level, message = check(dsn)
    assert level == "ok" and "schema current, 0 alerts" in message, message
    with psycopg.connect(with_password(dsn, password), autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 0)")
    level, message = check(dsn)
    assert level == "FAIL" and "[999]" in message and "newer release" in message
    level, message = check(psycopg.conninfo.make_conninfo(dsn, port=1))  # nothing listens there
    assert level == "FAIL" and "cannot be reached" in message and password not in message
    level, message = check(psycopg.conninfo.make_conninfo(dsn, password="in-the-dsn"))  # the file's wins
    assert level == "FAIL" and "[999]" in message and "in-the-dsn" not in message
    (tmp_path / "db-password").write_text("wrong\n", encoding="utf-8")
    level, message = check(dsn)
    assert level == "FAIL" and "password authentication failed" in message, message
