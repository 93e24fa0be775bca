"""The hub on PostgreSQL (``[store] backend = "postgresql"``): the whole app started on the tests' own
cluster, its password from a secret file, reads ingested, alerts served, the record searched, the audit
trail kept; and the settings it refuses."""

from __future__ import annotations

import time

import pytest

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
from protocols.messages import SCHEMA_VERSION, EventBatch, PlateRead, encode
from runtime.config import SettingsError

CSV = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n"


def split_password(dsn: str) -> tuple[str, str]:
    """The test cluster's DSN without its password, and the password."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(dsn)
    password = str(parts.pop("password"))
    return make_conninfo(**parts), password


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url, pg_dsn):
    wl = tmp_path / "wl.csv"
    wl.write_text(CSV, encoding="utf-8")
    dsn, password = split_password(pg_dsn)
    secret = tmp_path / "db-password"
    secret.write_text(password + "\n", encoding="utf-8")
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        watchlists=WatchlistSettings(csv=[str(wl)]),
        console=ConsoleSettings(token="246810"),
        store=StoreSettings(backend="postgresql", dsn=dsn, password_file=str(secret)),
    )
    return await aiohttp_client(create_app(settings))


def ingest(app, plate, seq):
    batch = EventBatch(
        v=SCHEMA_VERSION,
        checkpoint="SD-DZ-001",
        epoch=1,
        sent_at=time.time(),
        events=[
            PlateRead(
                seq=seq,
                camera_id="c",
                captured_at=time.time(),
                plate=plate,
                plate_raw=plate,
                plate_valid=True,
            )
        ],
    )
    return app[keys.INGEST].handle("cordon/v1/cp/SD-DZ-001/events", encode(batch), time.time()).result(10)


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
