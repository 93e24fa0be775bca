"""The hub on PostgreSQL (``[store] backend = "postgresql"``): the whole app started on the tests' own
cluster, its password from a secret file, reads ingested, alerts served, the record searched, the audit
trail kept; the settings it refuses; and its store when the database goes away (a commit cut off, a
statement cancelled, every session ended). The database crashing under a real hub's load is in the
fault suite (tests/test_faults.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from central.app import create_app
from central.settings import (
    ConsoleSettings,
    HubSettings,
    MqttSettings,
    StoreSettings,
    WatchlistSettings,
    load_settings,
)
from central.web import keys
from protocols import topics
from protocols.messages import SCHEMA_VERSION, EventBatch, PlateRead, encode
from runtime.config import SettingsError

CSV = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n"


def split_password(dsn: str) -> tuple[str, str]:
    """The test cluster's DSN without its password, and the password."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(dsn)
    password = str(parts.pop("password"))
    return make_conninfo(**parts), password


def store_settings(tmp_path: Path, dsn: str) -> StoreSettings:
    """The hub's [store] on the test cluster, its password in a secret file as an operator keeps it."""
    dsn, password = split_password(dsn)
    secret = tmp_path / "db-password"
    secret.write_text(password + "\n", encoding="utf-8")
    return StoreSettings(backend="postgresql", dsn=dsn, password_file=str(secret))


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url, pg_dsn):
    wl = tmp_path / "wl.csv"
    wl.write_text(CSV, encoding="utf-8")
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        watchlists=WatchlistSettings(csv=[str(wl)]),
        console=ConsoleSettings(token="246810"),
        store=store_settings(tmp_path, pg_dsn),
    )
    return await aiohttp_client(create_app(settings))


def one_read(seq: int, plate: str = "鲁B12345", checkpoint: str = "SD-DZ-001") -> bytes:
    """An edge's batch of one read, as the uplink encodes it."""
    now = time.time()
    read = PlateRead(seq=seq, camera_id="c", captured_at=now, plate=plate, plate_raw=plate, plate_valid=True)
    return encode(EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=now, events=[read]))


def ingest(app, plate, seq):
    return app[keys.INGEST].handle(topics.events("SD-DZ-001"), one_read(seq, plate), time.time()).result(10)


async def test_the_hub_runs_on_postgresql(client):
    from central.record.postgresql.store import PgStores

    store = client.app[keys.STORE]
    assert isinstance(store, PgStores)
    assert not (client.app[keys.SETTINGS].data_path / "hub.db").exists()
    await client.post("/login", json={"code": "246810"})
    ingest(client.app, "鲁Q8K2L1", 1)
    ingest(client.app, "鲁B00001", 2)
    health = await (await client.get("/api/v1/health")).json()
    assert health["reads_total"] == 2 and health["alerts_total"] == 1 and health["watchlist_entries"] == 1
    alerts = (await (await client.get("/api/v1/alerts?limit=10")).json())["alerts"]
    assert [a["plate_read"] for a in alerts] == ["鲁Q8K2L1"]
    (row,) = store.read(lambda tx: tx.execute("SELECT count(*) FROM reads").fetchall())
    assert row[0] == 2
    # The side stores are on the database too: a failed login is counted there, for every hub.
    from central.record.postgresql.shared import PgEvidenceStore, PgImportJobStore, PgLoginLimitStore

    assert isinstance(client.app[keys.LOGIN_LIMITS], PgLoginLimitStore)
    assert isinstance(client.app[keys.IMPORT_JOBS], PgImportJobStore)
    assert isinstance(client.app[keys.EVIDENCE].store, PgEvidenceStore)
    assert (
        await client.post("/login", json={"username": "nobody", "password": "wrong-password"})
    ).status == 401
    (failures,) = store.read(lambda tx: tx.execute("SELECT count(*) FROM login_failures").fetchone())
    assert failures == 2  # the account and the address
    # The watchlist loaded at start-up is audited on PostgreSQL's trail, and the chain holds.
    assert store.read(store.audit.verify).ok and store.read(
        lambda tx: store.audit.records(tx, action="watchlist.change")
    )


def test_the_settings_name_the_database_and_take_the_password_from_a_secret(tmp_path):
    with pytest.raises(SettingsError, match="store.dsn"):
        load_settings(None, {"CORDON_HUB_STORE__BACKEND": "postgresql"})
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    settings = load_settings(
        None,
        {
            "CORDON_HUB_STORE__BACKEND": "postgresql",
            "CORDON_HUB_STORE__DSN": "host=db dbname=cordon user=cordon",
            "CORDON_HUB_STORE__PASSWORD_FILE": str(secret),
        },
    )
    assert settings.store.database_password() == "s3cret"
    from central.record.postgresql.connections import with_password

    assert "password=s3cret" in with_password(settings.store.dsn, settings.store.database_password())
    assert load_settings(None, {}).store.backend == "sqlite"
    bad = StoreSettings(backend="postgresql", dsn="host=db", password_file=str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="password_file"):
        bad.database_password()


# -- the database going away --------------------------------------------------------------------------


class Relay:
    """A TCP relay in front of PostgreSQL that can cut the connection at the next message one way:
    ``cut = "request"`` drops what the client sends next (the server never sees it), ``cut = "reply"``
    lets the request through and drops the server's answer; either way both sockets are closed, as a
    crash or a broken line leaves them."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.cut: str | None = None
        self.refusing = False  # ``down()``: connections are closed as they arrive
        self._pairs: list[tuple[socket.socket, ...]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self._pairs.append((client, upstream))
            for src, dst, way in ((client, upstream, "request"), (upstream, client, "reply")):
                thread = threading.Thread(
                    target=self._pipe, args=(src, dst, way, (client, upstream)), daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _pipe(
        self, src: socket.socket, dst: socket.socket, way: str, pair: tuple[socket.socket, ...]
    ) -> None:
        try:
            while data := src.recv(65536):
                if self.cut == way:
                    self.cut = None
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def down(self) -> None:
        """The database unreachable: every connection through the relay ends, new ones are closed at once."""
        self.refusing = True
        for pair in self._pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._pairs.clear()

    def up(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self._server.close()


def _with_port(dsn: str, port: int) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(dsn), "port": port})


def test_a_commit_cut_off_is_settled_by_what_the_database_did(pg_dsn):
    """The connection breaks while a job commits: the job may have committed or not, and only the
    database knows. Its future waits until the database can be asked (by the transaction's id), then
    gives the job's value if it committed (so its events are acknowledged and its alerts dispatched
    once) or ``StoreUnavailable`` if it did not (nothing acknowledged: the edge sends them again)."""
    from central.record.postgresql.store import PgStores
    from central.record.tx import StoreUnavailable

    relay = Relay(conninfo_to_dict(pg_dsn)["port"])
    stores = PgStores(_with_port(pg_dsn, relay.port))
    stores.start()
    try:
        stores.submit(lambda tx: tx.execute("CREATE TABLE t (i int)")).result(30)

        def insert(i: int, cut: str):  # noqa: ANN202
            def job(tx):  # noqa: ANN001, ANN202
                tx.execute("INSERT INTO t VALUES (%s)", (i,))
                relay.cut = cut  # the next message that way is the commit, or its answer
                return f"job {i}"

            return job

        assert stores.submit(insert(1, "reply")).result(30) == "job 1"  # the server committed it
        with pytest.raises(StoreUnavailable, match="did not commit"):
            stores.submit(insert(2, "request")).result(30)  # the server never heard the commit
        count = "SELECT array_agg(i ORDER BY i) FROM t"
        assert stores.read(lambda tx: tx.execute(count).fetchone()[0]) == [1]
        assert stores.submit(lambda tx: tx.execute("INSERT INTO t VALUES (3)")).result(30) is not None
        assert stores.writer_error is None
    finally:
        stores.stop()
        relay.close()


def test_a_failure_of_the_database_mid_batch_is_not_a_dead_letter(pg_dsn):
    """A statement of an ingest batch is cancelled while it waits for a lock (as a lock timeout, a
    deadlock or an operator would end it): the database failed, not the batch. The batch is neither
    committed nor acknowledged nor kept as a dead letter, health says why, and the resend is stored."""
    import psycopg

    from central.ingest.listener import Recorder
    from central.ingest.pipeline import Ingest
    from central.record.postgresql.store import PgStores
    from central.record.tx import StoreUnavailable
    from central.watchlists.index import HubWatchlists
    from protocols.messages import Ack, decode

    stores = PgStores(pg_dsn)
    stores.start()
    locker = psycopg.connect(pg_dsn)
    try:
        acks: list[Ack] = []
        ingest = Ingest(stores, HubWatchlists(), lambda _t, p: acks.append(decode(Ack, p)), Recorder())
        topic = topics.events("SD-DZ-001")

        assert ingest.handle(topic, one_read(1), time.time()).result(30).reads == 1
        locker.execute("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE")  # held until the rollback below
        stalled = ingest.handle(topic, one_read(2), time.time())
        deadline = time.monotonic() + 20
        while not (
            waiting := locker.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchall()
        ):
            assert time.monotonic() < deadline, "the batch never waited for the lock"
            time.sleep(0.02)
        locker.execute("SELECT pg_cancel_backend(%s)", (waiting[0][0],))
        with pytest.raises(StoreUnavailable, match="cancel"):
            stalled.result(30)
        assert [a.ranges for a in acks] == [[(1, 1)]], "acknowledged what was not committed"
        assert stores.counts().dead_letters == 0 and stores.counts().reads == 1
        assert "cancel" in (stores.writer_error or "")
        locker.rollback()
        again = ingest.handle(topic, one_read(2), time.time()).result(30)
        assert again.reads == 1 and acks[-1].ranges == [(2, 2)] and stores.writer_error is None
        assert stores.counts().reads == 2 and stores.counts().dead_letters == 0
    finally:
        locker.close()
        stores.stop()


def test_connections_the_server_ended_are_replaced_before_use(pg_dsn):
    """Every session of the hub's database is ended (as a restart of the server ends them): the writer and
    the pooled connections are found dead before use and replaced, so nothing fails after."""
    import psycopg

    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    try:
        stores.submit(lambda tx: tx.execute("CREATE TABLE t (i int)")).result(30)
        assert stores.read(lambda tx: tx.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
        stores.record.days()
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            ended = [
                pid
                for (pid,) in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
            assert len(ended) >= 3  # the writer, a pooled connection of the store and one of the record
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (ended,))
            deadline = time.monotonic() + 20
            while admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (ended,)
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the sessions did not end"
                time.sleep(0.02)
        stores.submit(lambda tx: tx.execute("INSERT INTO t VALUES (1)")).result(30)
        assert stores.read(lambda tx: tx.execute("SELECT count(*) FROM t").fetchone()[0]) == 1
        assert stores.record.days() == [] and stores.writer_error is None
    finally:
        stores.stop()


def test_the_writer_commits_durably_where_the_database_says_otherwise(pg_dsn):
    """``synchronous_commit = off`` (a tuning the database may carry) answers a commit before it is on disk,
    and a crash then loses commits the hub acknowledged (the fault suite's crash case fails so): the hub's
    writer turns it on for its own session, and so does the connection of the jobs beside its groups."""
    import psycopg

    from central.record.postgresql.store import PgStores

    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        dbname = admin.info.dbname
        admin.execute(f'ALTER DATABASE "{dbname}" SET synchronous_commit = off')
    stores = PgStores(pg_dsn)
    stores.start()
    try:
        assert stores.read(lambda tx: tx.execute("SHOW synchronous_commit").fetchone()[0]) == "off"
        assert (
            stores.submit(lambda tx: tx.execute("SHOW synchronous_commit").fetchone()[0]).result(30) == "on"
        )
        aside = stores.submit_aside(lambda tx: tx.execute("SHOW synchronous_commit").fetchone()[0])
        assert aside.result(30) == "on"
    finally:
        stores.stop()


async def test_a_request_while_the_database_is_away_is_answered_503_in_words(
    aiohttp_client, tmp_path, dead_broker_url, pg_dsn
):
    """A console page or API call that needs the record while PostgreSQL cannot be reached gets a 503 with
    ``Retry-After`` and a sentence (a front door then tries another hub; the console says so), not a
    500; authorization still comes first, and the next request after the database is back is served."""
    relay = Relay(conninfo_to_dict(pg_dsn)["port"])
    dsn, password = split_password(_with_port(pg_dsn, relay.port))
    secret = tmp_path / "db-password"
    secret.write_text(password + "\n", encoding="utf-8")
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="246810"),
        store=StoreSettings(backend="postgresql", dsn=dsn, password_file=str(secret)),
    )
    client = await aiohttp_client(create_app(settings))
    try:
        assert (await client.post("/login", json={"code": "246810"})).status == 200
        assert (await client.get("/api/v1/alerts?limit=5")).status == 200
        relay.down()
        response = await client.get("/api/v1/alerts?limit=5")
        assert response.status == 503, await response.text()
        assert response.headers["Retry-After"] == "5"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "cannot be reached" in (await response.json())["error"]
        client.session.cookie_jar.clear()
        assert (await client.get("/api/v1/alerts?limit=5")).status == 401  # still not without signing in
        relay.up()
        assert (await client.post("/login", json={"code": "246810"})).status == 200
        assert (await client.get("/api/v1/alerts?limit=5")).status == 200
    finally:
        await client.close()
        relay.close()


def test_a_status_waiting_for_another_hubs_row_holds_up_no_reads(pg_dsn):
    """Every hub on the store gets each checkpoint's status and writes the same rows (the checkpoint's, its
    uptime samples). Written in the writer's group, one hub's wait for the row another hub's transaction
    held stopped its whole group: reads and alerts waited with it. Statuses go beside the groups."""
    import psycopg

    from central.ingest.listener import Recorder
    from central.ingest.pipeline import Ingest
    from central.record.postgresql.store import PgStores
    from central.watchlists.index import HubWatchlists
    from protocols.messages import CheckpointStatus

    stores = PgStores(pg_dsn)
    stores.start()
    other_hub = psycopg.connect(pg_dsn)
    try:
        ingest = Ingest(stores, HubWatchlists(), lambda _t, _p: None, Recorder())
        cp = "SD-DZ-001"

        def status() -> bytes:
            return encode(
                CheckpointStatus(v=SCHEMA_VERSION, checkpoint=cp, online=True, sent_at=time.time(), epoch=1)
            )

        ingest.handle(topics.status(cp), status(), time.time()).result(30)
        # Another hub's transaction writing the same status: it holds the checkpoint's row to its commit.
        other_hub.execute("SELECT 1 FROM checkpoints WHERE checkpoint = %s FOR UPDATE", (cp,))
        waiting = ingest.handle(topics.status(cp), status(), time.time())
        reads = [
            ingest.handle(topics.events(cp), one_read(seq, checkpoint=cp), time.time()) for seq in (1, 2, 3)
        ]
        assert [r.result(30).reads for r in reads] == [1, 1, 1], "reads held up behind the status"
        assert not waiting.done(), "the status did not wait for the other hub's row"
        other_hub.rollback()
        assert waiting.result(30).status is not None
        assert stores.counts().reads == 3
    finally:
        other_hub.close()
        stores.stop()
