"""Accounts and roles on the hub: argon2 passwords, sessions that end when the account changes,
API tokens, role rules per route, covert alerts for the allowed roles only, login limits, CSRF; the
``cordon user`` and ``cordon audit`` commands on either store."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psycopg
import pytest

from central.app import create_app
from central.people import users
from central.record.postgresql.store import PgStores
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.web import keys
from cordon.cli import main
from protocols.matching import Watchlist
from protocols.messages import SCHEMA_VERSION, Alert, AlertHit
from tests.support import login, session

PASSWORD = "correct horse battery"


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="246810"),
    )
    return await aiohttp_client(create_app(settings))


async def sign_in(client, username, password=PASSWORD):
    return await client.post("/login", json={"username": username, "password": password})


async def make(client, username, role, checkpoint=None):
    await login(client.session, str(client.make_url("")), "246810")  # the access code opens an admin session
    resp = await client.post(
        "/api/v1/users",
        json={"username": username, "role": role, "password": PASSWORD, "checkpoint": checkpoint},
    )
    assert resp.status == 201, await resp.text()
    client.session.cookie_jar.clear()


def covert_and_open_alerts(app):
    def alert(aid, action, list_id="l"):
        return Alert(
            v=SCHEMA_VERSION,
            alert_id=aid,
            checkpoint="SD-DZ-001",
            epoch=1,
            seq=1,
            raised_at=time.time(),
            captured_at=time.time(),
            camera_id="c",
            plate_read="鲁A0K88B",
            hit=AlertHit(
                entry_id="e",
                entry_plate="鲁A0K88B",
                list_id=list_id,
                list_name="专案",
                action=action,
                priority=70,
                kind="exact",
                score=1.0,
                explanation="x",
            ),
        )

    app[keys.WATCHLISTS].set_list(Watchlist(list_id="r", name="限定名单", restricted=True))
    store = app[keys.STORE]
    store.submit(
        lambda db: [
            store.insert_alert(db, a)
            for a in (alert("Acov", "covert"), alert("Aint", "intercept"), alert("Ares", "intercept", "r"))
        ]
    ).result(5)


def test_passwords_are_argon2id_and_too_short_ones_are_refused():
    assert users.hash_password(PASSWORD).startswith("$argon2id$")
    with pytest.raises(users.UserError, match="at least 10"):
        users.hash_password("short")


async def test_roles_open_their_routes_only(client):
    await make(client, "li.analyst", "analyst")
    await make(client, "zhao.audit", "auditor")
    assert (await sign_in(client, "li.analyst", "wrong password")).status == 401
    assert (await sign_in(client, "li.analyst")).status == 200
    assert (await client.get("/api/v1/watchlists")).status == 200
    resp = await client.post("/api/v1/watchlists", json={"list_id": "x", "name": "x"})
    assert resp.status == 403 and "analyst" in (await resp.json())["error"]
    assert (await client.get("/api/v1/audit")).status == 403
    assert (await client.get("/api/v1/users")).status == 403
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "zhao.audit")).status == 200
    assert (await client.get("/api/v1/audit")).status == 200
    assert (await client.get("/api/v1/alerts")).status == 403, "an auditor reads the trail, not the record"


async def test_covert_alerts_reach_only_the_roles_allowed(client):
    covert_and_open_alerts(client.server.app)
    await make(client, "wang.lists", "watchlist_manager")
    await make(client, "sun.cmd", "commander")
    await sign_in(client, "wang.lists")
    seen = {a["alert_id"] for a in (await (await client.get("/api/v1/alerts")).json())["alerts"]}
    assert seen == {"Aint"}, "neither the covert list's hit nor the restricted list's"
    ws = await client.ws_connect("/api/v1/ws")
    frames = [await ws.receive_json(timeout=5) for _ in range(2)]
    assert [f["type"] for f in frames] == ["hello", "alert"] and frames[1]["alert"]["alert_id"] == "Aint"
    await ws.close()
    client.session.cookie_jar.clear()
    await sign_in(client, "sun.cmd")
    seen = {a["alert_id"] for a in (await (await client.get("/api/v1/alerts")).json())["alerts"]}
    assert seen == {"Aint", "Acov", "Ares"}


async def test_disabling_or_a_new_password_ends_sessions_at_once(client):
    await make(client, "li.analyst", "analyst")
    base = str(client.make_url("")).rstrip("/")
    await login(client.session, base, "246810")  # the admin's session; the analyst has a browser of their own
    async with session() as analyst:

        async def works() -> int:
            async with analyst.get(f"{base}/api/v1/alerts") as resp:
                return resp.status

        async with analyst.post(
            f"{base}/login", json={"username": "li.analyst", "password": PASSWORD}
        ) as resp:
            assert resp.status == 200
        assert await works() == 200
        assert (await client.post("/api/v1/users/li.analyst/disable")).status == 200
        assert await works() == 401, "a disabled account's session is over"
        async with analyst.post(
            f"{base}/login", json={"username": "li.analyst", "password": PASSWORD}
        ) as resp:
            assert resp.status == 401
        await client.post("/api/v1/users/li.analyst/enable")
        async with analyst.post(
            f"{base}/login", json={"username": "li.analyst", "password": PASSWORD}
        ) as resp:
            assert resp.status == 200
        assert await works() == 200
        resp = await client.post(
            "/api/v1/users/li.analyst/password", json={"password": "another long secret"}
        )
        assert resp.status == 200
        assert await works() == 401, "a new password ends the old sessions"
        async with analyst.post(
            f"{base}/login", json={"username": "li.analyst", "password": "another long secret"}
        ) as resp:
            assert resp.status == 200
        assert await works() == 200


async def test_api_tokens_act_with_the_accounts_role(client):
    await make(client, "ops.bot", "commander")
    await login(client.session, str(client.make_url("")), "246810")
    token = (await (await client.post("/api/v1/users/ops.bot/token")).json())["token"]
    client.session.cookie_jar.clear()
    auth = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/alerts", headers=auth)).status == 200
    assert (await client.get("/api/v1/users", headers=auth)).status == 403
    assert (await client.get("/api/v1/alerts", headers={"Authorization": "Bearer cdt_guess"})).status == 401


async def test_failed_logins_are_limited(client):
    await make(client, "li.analyst", "analyst")
    for _ in range(5):
        assert (await sign_in(client, "li.analyst", "nope nope nope")).status == 401
    resp = await sign_in(client, "li.analyst")
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0, "even the right password waits now"
    # The failures are counted in the hub's login-limit store (the factory's), not a limiter of its own.
    assert client.app[keys.LOGIN_LIMITS].retry_after("li.analyst", "0.0.0.0") is not None


async def test_a_cross_site_post_is_refused(client):
    await login(client.session, str(client.make_url("")), "246810")
    resp = await client.post(
        "/api/v1/users",
        json={"username": "evil", "role": "admin", "password": PASSWORD},
        headers={"Origin": "https://attacker.example"},
    )
    assert resp.status == 403 and "cross-site" in (await resp.json())["error"]
    resp = await client.post("/api/v1/users/evil/disable", headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403


def test_user_cli_adds_lists_and_disables(tmp_path):
    def cli(*args, stdin=""):
        return subprocess.run(
            [sys.executable, "-m", "cordon.cli", "user", *args, "--data", str(tmp_path)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = cli(
        "add", "chen.officer", "--role", "officer", "--checkpoint", "SD-DZ-001", stdin=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    assert '"checkpoint": "SD-DZ-001"' in added.stdout and "argon2" not in added.stdout
    refused = cli("add", "x.officer", "--role", "officer", stdin=PASSWORD + "\n")
    assert refused.returncode == 1 and "bound to a checkpoint" in refused.stderr
    assert cli("disable", "chen.officer").returncode == 0
    listed = cli("list")
    assert '"disabled": true' in listed.stdout
    assert cli("disable", "nobody").returncode == 1


def test_covert_and_restricted_hits_never_go_to_a_checkpoint(tmp_path):
    """The dispatcher sends a checkpoint only hits of lists its tablets may sound for."""
    import asyncio

    from central.alerts.dispatch import AlertDispatcher
    from central.record.sqlite.store import HubStore
    from runtime.fanout import Fanout

    sent: list[str] = []
    store = HubStore(tmp_path / "hub.db")
    dispatcher = AlertDispatcher(
        store,
        lambda topic, payload, **kw: sent.append(topic),
        Fanout(),
        restricted=lambda list_id: list_id == "r",
    )

    def alert(aid, action, list_id="l"):
        return Alert(
            v=SCHEMA_VERSION,
            alert_id=aid,
            checkpoint="SD-DZ-001",
            epoch=1,
            seq=1,
            raised_at=0.0,
            captured_at=0.0,
            camera_id="c",
            plate_read="鲁A0K88B",
            hit=AlertHit(
                entry_id="e",
                entry_plate="鲁A0K88B",
                list_id=list_id,
                list_name="n",
                action=action,
                priority=70,
                kind="exact",
                score=1.0,
                explanation="x",
            ),
        )

    async def run():
        dispatcher.bind(asyncio.get_running_loop())
        dispatcher.dispatch([alert("A1", "covert"), alert("A2", "intercept", "r"), alert("A3", "intercept")])

    asyncio.run(run())
    assert sent == ["cordon/v1/cp/SD-DZ-001/alerts"], "only the open list's hit went to the checkpoint"


async def test_me_says_who_is_signed_in_and_what_the_console_may_offer(client):
    """The console asks once who it is (GET /api/v1/me) instead of probing routes for a 403; the
    capabilities follow the route policy, so the page and the hub cannot disagree."""
    assert (await client.get("/api/v1/me")).status == 401
    for name, role in (("sun.cmd", "commander"), ("li.lists", "watchlist_manager"), ("zhao.aud", "auditor")):
        await make(client, name, role)
    expected = {
        "sun.cmd": {
            "alerts",
            "alerts.covert",
            "escalation.notice",
            "record.search",
            "intel",
            "stats",
            "kits",
        },
        "li.lists": {"alerts", "watchlists", "watchlists.write", "watchlists.import", "watchlists.export"},
        "zhao.aud": {"stats", "audit"},
    }
    refused = {
        "sun.cmd": {"watchlists.write", "watchlists.import", "users", "audit"},
        "li.lists": {"alerts.covert", "record.search", "intel", "stats", "kits", "escalation.notice"},
        "zhao.aud": {"alerts", "watchlists", "record.search"},
    }
    for name in expected:
        assert (await sign_in(client, name)).status == 200
        me = await (await client.get("/api/v1/me")).json()
        client.session.cookie_jar.clear()
        assert me["user"] == name and me["display_name"] == name and me["time_zone"] == "Asia/Shanghai"
        assert expected[name] <= set(me["capabilities"]), (name, me)
        assert not refused[name] & set(me["capabilities"]), (name, me)
    # each capability is what the route's rule says: the watchlist manager may save a list, the commander not
    from central.web.console import CAPABILITY_ROUTES
    from central.web.policy import POLICY

    assert set(CAPABILITY_ROUTES.values()) <= set(POLICY), "every capability names a real route"


def test_user_and_audit_commands_work_on_a_postgresql_hub(tmp_path, pg_cluster, pg_dsn, capfd, monkeypatch):
    """``--config`` with ``[store] backend = "postgresql"``: the first admin added before the hub ever ran
    (the tables made on the way), accounts changed and listed, the trail verified there (a record changed
    behind the store's back is found), a wrong password said in one line."""
    password = tmp_path / "db-password"
    password.write_text(pg_cluster.password + "\n")
    config = tmp_path / "hub.toml"
    dsn = pg_dsn.replace(f"password={pg_cluster.password} ", "")
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
        f'password_file = "{password}"\n'
    )
    admin_password = tmp_path / "admin-password"
    admin_password.write_text("a long first admin passphrase\n")
    # The first admin of a new PostgreSQL hub: the store's tables are made on the way.
    assert (
        main(
            [
                "user",
                "add",
                "admin",
                "--role",
                "admin",
                "--config",
                str(config),
                "--password-file",
                str(admin_password),
            ]
        )
        == 0
    )
    assert json.loads(capfd.readouterr().out)["username"] == "admin"
    assert main(["user", "disable", "admin", "--config", str(config)]) == 0
    assert main(["user", "list", "--config", str(config)]) == 0
    assert json.loads(capfd.readouterr().out.splitlines()[-1])["disabled"] is True
    assert main(["audit", "verify", "--config", str(config)]) == 0
    verdict = json.loads(capfd.readouterr().out)
    assert verdict["ok"] and verdict["records"] == 2
    assert main(["audit", "head", "--config", str(config)]) == 0
    head = capfd.readouterr().out.strip()
    assert head == f"2:{verdict['head_hash']}"
    assert main(["audit", "verify", "--config", str(config), "--head", head]) == 0
    capfd.readouterr()
    assert not (tmp_path / "data" / "hub.db").exists()  # nothing written beside: all on PostgreSQL
    store = PgStores(pg_dsn)
    try:
        records = store.read(lambda tx: store.audit.records(tx))
        assert [r.action for r in records] == ["user.disable", "user.add"] and records[0].actor.startswith(
            "cli:"
        )
    finally:
        store.stop()
    # A record changed behind the store's back is found, through PostgreSQL's own trail.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_change")
        conn.execute("UPDATE audit SET reason = 'x'::bytea WHERE id = 1")
    assert main(["audit", "verify", "--config", str(config)]) == 1
    assert "record 1 was changed" in capfd.readouterr().out
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    monkeypatch.setenv("CORDON_HUB_STORE__PASSWORD_FILE", str(wrong))
    assert main(["user", "list", "--config", str(config)]) == 1
    err = capfd.readouterr().err
    assert "password authentication failed" in err and "Traceback" not in err and "nope" not in err
