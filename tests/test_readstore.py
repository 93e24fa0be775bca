"""The record in day files: routing, exactly-once, search, purge, crash safety, migration, the search API."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time

import msgspec
import pytest
import sqlite_utils

from central.app import create_app
from central.ingest.listener import Recorder
from central.ingest.pipeline import Ingest
from central.record.platepattern import PatternError, parse_pattern
from central.record.sqlite.dayfiles import SqliteReadStore, file_name
from central.record.sqlite.store import MIGRATIONS, HubStore, digest
from central.settings import ConsoleSettings, HubSettings, MqttSettings, WatchlistSettings
from central.watchlists.index import HubWatchlists
from central.web import keys
from protocols.messages import SCHEMA_VERSION, EdgeHit, EventBatch, Passage, PlateRead, encode
from runtime.sqlwriter import NeedsPreparation, SqlWriter

DAY = 86400.0
# 2026-11-27 16:30 UTC is 2026-11-28 00:30 in China (+08:00)
T0 = dt.datetime(2026, 11, 27, 16, 30, tzinfo=dt.UTC).timestamp()
TOPIC = "cordon/v1/cp/SD-DZ-001/events"


def read(seq, plate="鲁B12345", at=T0, **kw):
    return PlateRead(
        seq=seq, camera_id="cam", captured_at=at, plate=plate, plate_raw=plate, plate_valid=True, **kw
    )


@pytest.fixture
def store(tmp_path):
    s = HubStore(tmp_path / "hub.db")
    s.start()
    yield s
    s.stop()


def put(store, event, checkpoint="SD-DZ-001", epoch=1):
    return store.submit(lambda db: store.insert_event(db, checkpoint, epoch, event, 0.0, time.time())).result(
        10
    )


def everything(store):
    return [r for day in store.record.days() for r in store.record.iter_reads(day)]


# -- routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset, day", [("+08:00", "2026-11-28"), ("+00:00", "2026-11-27"), ("-05:00", "2026-11-27")]
)
def test_a_read_is_filed_under_its_day_in_the_configured_offset(tmp_path, offset, day):
    s = HubStore(tmp_path / "hub.db", utc_offset=offset)
    s.start()
    try:
        assert put(s, read(1)).inserted
        assert (tmp_path / "record" / f"reads-{day}.db").exists()
        assert [d.isoformat() for d in s.record.days()] == [day]
    finally:
        s.stop()


def test_midnight_splits_days_and_passages_go_by_first_seen(store):
    midnight = dt.datetime(2026, 11, 28, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    put(store, read(1, at=midnight - 0.001))
    put(store, read(2, at=midnight))
    put(
        store,
        Passage(
            seq=3,
            plate="鲁B12345",
            first_seen=midnight - 1,
            last_seen=midnight + 5,
            best_seq=1,
            read_seqs=[1, 2],
            cameras=["cam"],
        ),
    )
    assert [d.isoformat() for d in store.record.days()] == ["2026-11-27", "2026-11-28"]
    assert [q["seq"] for q in store.record.passages_of(dt.date(2026, 11, 27))] == [3]
    assert [r.seq for r in store.record.iter_reads(dt.date(2026, 11, 28))] == [2]


def test_a_day_file_appears_with_its_tables(store, monkeypatch):
    """A reader (a search, a backup, a test reading the files) that finds a new day's file finds its
    tables in it: the file is made under another name and renamed into place, never seen half-made."""
    from central.record.sqlite import dayfiles

    path = store.record.root / file_name(dt.date(2026, 11, 28))
    seen: list[bool] = []
    made = dayfiles.create_schema

    def create_schema(conn, *args, **kwargs):
        seen.append(path.exists())  # the day's file is visible while its tables are being made?
        return made(conn, *args, **kwargs)

    monkeypatch.setattr(dayfiles, "create_schema", create_schema)
    put(store, read(1))
    assert seen and not seen[0], "the day file was visible before its tables were made"
    assert not list(store.record.root.glob(".*")), "no temporary file left behind"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM reads").fetchone() == (1,)


def test_more_days_than_attached_files_are_all_stored(tmp_path):
    s = HubStore(tmp_path / "hub.db", attached_max=2)
    s.start()
    try:
        for i in range(6):  # six days, two attached at a time: each new day is attached between commits
            assert put(s, read(i, at=T0 - i * DAY)).inserted
        assert put(s, read(0, at=T0)).seen_before  # day 0 was detached long ago, and is found again
        assert len(s.record.days()) == 6 and s.counts().reads == 6
    finally:
        s.stop()


# -- exactly once ---------------------------------------------------------------------------------


def test_resend_is_a_duplicate_and_other_content_a_conflict(store):
    assert put(store, read(1, "鲁B11111")).inserted
    again = put(store, read(1, "鲁B11111"))
    assert not again.inserted and again.seen_before and again.dead_letter is None
    other = put(store, read(1, "鲁B22222"))
    assert not other.inserted and "already stored with different content" in other.dead_letter
    assert [r.plate for r in everything(store)] == ["鲁B11111"]
    assert put(store, read(1, "鲁B11111"), epoch=2).inserted, "another epoch is another event"


def test_a_read_a_passage_and_a_hit_cannot_share_an_identity(store):
    assert put(store, read(1)).inserted
    passage = Passage(
        seq=1, plate="鲁B12345", first_seen=T0, last_seen=T0, best_seq=1, read_seqs=[1], cameras=["c"]
    )
    assert put(store, passage).dead_letter
    hit = EdgeHit(
        seq=1,
        read_seq=1,
        alert_id="a",
        entry_id="e",
        list_id="l",
        kind="exact",
        score=1.0,
        explanation="x",
        feed_version=1,
        matcher_version="1",
        raised_at=T0 + 1,
    )
    assert put(store, hit).dead_letter
    hit2 = msgspec.structs.replace(hit, seq=7)
    assert put(store, hit2).inserted
    assert put(store, hit2).dead_letter is None
    assert put(store, read(7)).dead_letter, "a read may not take a hit's identity"


# -- search ---------------------------------------------------------------------------------------

PLATES = [
    "鲁A12345",
    "鲁A99235",
    "鲁A1235",
    "鲁AD12315",
    "鲁B12345",
    "冀A12345",
    "鲁A%2345",
    "鲁A_2345",
    "鲁A[2345",
    "鲁Q8K2L1",
    "",
    "鲁A23X5",
]


@pytest.fixture
def filled(store):
    for i, plate in enumerate(PLATES):
        put(store, read(i + 1, plate, at=T0 + i, no_plate=not plate))
    put(store, read(100, "鲁A12345", at=T0 - 3 * DAY))
    return store


def oracle(pattern: str, plates):
    rx = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z")
    return sorted(p for p in plates if rx.match(p))


@pytest.mark.parametrize(
    "pattern",
    [
        "鲁A*23?5",
        "*23?5",
        "鲁A?2345",
        "*2345",
        "鲁A*",
        "鲁?1*5",
        "*K2L?",
        "鲁AD*",
        "鲁A1235",
        "冀A*",
        "??12345",
        "*A*3*",
    ],
)
def test_partial_search_matches_what_the_pattern_says(filled, pattern):
    found = filled.record.search_pattern(pattern, T0 - DAY, T0 + DAY)
    assert sorted(r.plate for r in found.reads) == oracle(pattern, [p for p in PLATES if p])


def test_exact_search_over_a_range_newest_first(filled):
    found = filled.record.search_exact("鲁a12345", T0 - 5 * DAY, T0 + DAY)
    assert [(r.seq, r.plate) for r in found.reads] == [(1, "鲁A12345"), (100, "鲁A12345")]
    assert found.days == 2
    assert [r.seq for r in filled.record.search_exact("鲁A12345", T0 - DAY, T0 + DAY).reads] == [1]
    assert filled.record.search_exact("鲁A00000", T0 - 5 * DAY, T0 + DAY).reads == []
    limited = filled.record.search_exact("鲁A12345", T0 - 5 * DAY, T0 + DAY, limit=1)
    assert len(limited.reads) == 1 and limited.truncated


@pytest.mark.parametrize(
    "bad, why",
    [
        ("鲁A%2345", "not '%'"),
        ("鲁A_2345", "not '_'"),
        ("鲁A[2]345", "'['"),
        ("鲁A';DROP--", "not"),
        ("*", "at least 2 known"),
        ("?*?", "at least 2 known"),
        ("", "empty"),
        ("鲁A1234567890123456", "longer than"),
    ],
)
def test_patterns_with_glob_or_sql_metacharacters_are_refused_clearly(filled, bad, why):
    with pytest.raises(PatternError, match=re.escape(why)):
        filled.record.search_pattern(bad, T0 - DAY, T0 + DAY)
    assert len(everything(filled)) == len(PLATES) + 1, "nothing was touched"


def test_exact_plates_with_metacharacters_are_refused(filled):
    for bad in ("鲁A%2345", "鲁A*", "x'y"):
        with pytest.raises(PatternError):
            filled.record.search_exact(bad, T0 - DAY, T0 + DAY)


def test_the_pattern_takes_the_more_selective_literal_end():
    p = parse_pattern("鲁a**23?5")
    assert (p.glob, p.prefix, p.suffix) == ("鲁A*23?5", "鲁A", "5")


# -- purge ----------------------------------------------------------------------------------------


def test_purge_removes_exactly_the_days_before_the_cutoff(store):
    for i in range(5):
        put(store, read(i, at=T0 - i * DAY))
    days = store.record.days()
    assert len(days) == 5
    cutoff = days[2]
    assert store.purge_before(cutoff) == days[:2]
    assert store.record.days() == days[2:]
    assert sorted(p.name for p in store.record.root.iterdir() if p.suffix == ".db") == [
        file_name(d) for d in days[2:]
    ]
    assert not list(store.record.root.glob("*.purged-*"))
    assert {r.seq for r in everything(store)} == {0, 1, 2}
    assert store.purge_before(cutoff) == []
    # ingest goes on, today's attached file included; a late read for a purged day makes a fresh file
    assert put(store, read(50, at=T0)).inserted
    assert put(store, read(51, at=T0 - 4 * DAY)).inserted
    assert days[0] in store.record.days()


def test_purge_detaches_an_attached_day(store):
    put(store, read(1, at=T0 - DAY))
    put(store, read(2, at=T0))
    assert store.purge_before(dt.date(2026, 11, 28)) == [dt.date(2026, 11, 27)]
    assert put(store, read(3, at=T0 - DAY)).inserted, "re-attached as a new, empty day file"
    assert [r.seq for r in store.record.iter_reads(dt.date(2026, 11, 27))] == [3]


# -- crash safety ---------------------------------------------------------------------------------

CSV = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n"


def _hub_ingest(store):
    from central.record.sqlite.watchlists import apply_changes
    from central.watchlists.index import changes_for, parse_csv
    from central.watchlists.lists import ListService

    watchlists = HubWatchlists()
    ListService(store, watchlists, lambda *a, **k: None).load()
    store.submit(
        lambda db: [
            op() for op in apply_changes(db, changes_for(parse_csv(CSV), {}), watchlists, "test").index_ops
        ]
    ).result(5)
    alerts = []
    return Ingest(store, watchlists, publish=lambda t, p: None, listener=Recorder(alerts=alerts)), alerts


def _batch(events, epoch=1):
    return encode(
        EventBatch(v=SCHEMA_VERSION, checkpoint="SD-DZ-001", epoch=epoch, sent_at=time.time(), events=events)
    )


def test_resend_after_the_day_file_committed_without_hub_db_still_raises_the_alert_once(store):
    ingest, alerts = _hub_ingest(store)
    listed = read(1, "鲁Q8K2L1", at=time.time())
    # The crash: the read reached its day file, hub.db (the alert) did not.
    put(store, listed)
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    result = ingest.handle(TOPIC, _batch([listed]), time.time()).result(10)
    assert result.duplicates == 1 and result.reads == 0
    assert [a.plate_read for a in alerts] == ["鲁Q8K2L1"]
    ingest.handle(TOPIC, _batch([listed]), time.time()).result(10)
    assert len(alerts) == 1, "a second resend raises nothing"
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT count(*) FROM alerts").fetchone() == (1,)


def test_edge_hit_after_its_read_is_reconciled_through_the_record(store):
    ingest, alerts = _hub_ingest(store)
    now = time.time()
    ingest.handle(TOPIC, _batch([read(1, "鲁B00001", at=now)]), now).result(10)
    hit = EdgeHit(
        seq=2,
        read_seq=1,
        alert_id="edge-alert-1",
        entry_id="涉毒:鲁Q8K2L1",
        list_id="涉毒",
        kind="exact",
        score=1.0,
        explanation="edge",
        feed_version=1,
        matcher_version="1",
        raised_at=now + 0.2,
    )
    ingest.handle(TOPIC, _batch([hit]), now).result(10)
    assert [(a.alert_id, a.plate_read) for a in alerts] == [("edge-alert-1", "鲁B00001")]


# -- migration ------------------------------------------------------------------------------------


def _old_hub_db(path, rows):
    """A hub.db as the code before day files made it: migrations 1 and 2, reads in hub.db."""
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    db.conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    for version, statements in enumerate(MIGRATIONS[:2], start=1):
        for statement in statements:
            db.conn.execute(statement)
        db.conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, 0))
    for ev in rows:
        kind = "read" if isinstance(ev, PlateRead) else "passage"
        db.conn.execute("INSERT INTO events VALUES ('SD-DZ-001', 1, ?, ?, ?, 0)", (ev.seq, kind, digest(ev)))
        if kind == "read":
            db.conn.execute(
                "INSERT INTO reads (checkpoint, epoch, seq, camera_id, captured_at, received_at, plate, plate_raw, "
                "plate_valid, no_plate) VALUES ('SD-DZ-001', 1, ?, ?, ?, 0, ?, ?, 1, 0)",
                (ev.seq, ev.camera_id, ev.captured_at, ev.plate, ev.plate_raw),
            )
        else:
            db.conn.execute(
                "INSERT INTO passages (checkpoint, epoch, seq, plate, no_plate, first_seen, last_seen, best_seq, "
                "read_seqs, cameras, received_at) VALUES ('SD-DZ-001', 1, ?, ?, 0, ?, ?, ?, '[1]', '[]', 0)",
                (ev.seq, ev.plate, ev.first_seen, ev.last_seen, ev.best_seq),
            )
    db.conn.close()


def test_an_old_hub_db_opens_and_its_reads_move_into_day_files(tmp_path):
    old = [
        read(1, "鲁A11111", at=T0),
        read(2, "鲁A22222", at=T0 - DAY),
        read(3, "鲁A11111", at=T0 - 2 * DAY),
        Passage(
            seq=4, plate="鲁A11111", first_seen=T0, last_seen=T0 + 3, best_seq=1, read_seqs=[1], cameras=[]
        ),
    ]
    _old_hub_db(tmp_path / "hub.db", old)
    s = HubStore(tmp_path / "hub.db")
    s.start()
    try:
        assert s.counts().reads == 3 and s.counts().passages == 1
        assert len(s.record.days()) == 3
        assert [r.seq for r in s.record.search_exact("鲁A11111", T0 - 5 * DAY, T0 + DAY).reads] == [1, 3]
        assert put(s, old[0]).seen_before, "the old digest came along: a resend is a duplicate"
        assert put(s, read(2, "鲁A99999", at=T0 - DAY)).dead_letter, "and other content a conflict"
        with sqlite3.connect(s.path) as db:
            tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            assert "reads" not in tables and "passages" not in tables
            assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)
            assert (3,) in db.execute("SELECT version FROM schema_migrations").fetchall()
    finally:
        s.stop()
    s = HubStore(tmp_path / "hub.db")  # and it opens again, nothing moved twice
    s.start()
    try:
        assert s.counts().reads == 3
    finally:
        s.stop()


# -- the writer's preparation protocol -----------------------------------------------------------


def test_a_job_that_needs_preparation_runs_again_after_it_and_others_commit(tmp_path):
    w = SqlWriter(tmp_path / "x.db", name="t", setup=lambda db: db.conn.execute("CREATE TABLE t (v)"))
    w.start()
    try:
        prepared = []

        def needy(db):
            if not prepared:
                raise NeedsPreparation(lambda d: prepared.append(d.conn.in_transaction))
            db.conn.execute("INSERT INTO t VALUES ('needy')")
            return "done"

        first = w.submit(needy)
        other = w.submit(lambda db: db.conn.execute("INSERT INTO t VALUES ('other')"))
        assert first.result(5) == "done" and other.result(5) is not None
        assert prepared == [False], "prepared outside any transaction"

        def never(db):
            raise NeedsPreparation(lambda d: None)

        with pytest.raises(RuntimeError, match="still"):
            w.submit(never).result(5)
        assert w.submit(lambda db: db.conn.in_transaction, transaction=False).result(5) is False
        assert sorted(
            v for (v,) in w.submit(lambda db: db.conn.execute("SELECT v FROM t").fetchall()).result(5)
        ) == ["needy", "other"]
    finally:
        w.stop()


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    wl = tmp_path / "wl.csv"
    wl.write_text(CSV, encoding="utf-8")
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        watchlists=WatchlistSettings(csv=[str(wl)]),
        console=ConsoleSettings(token="246810"),
    )
    return await aiohttp_client(create_app(settings))


async def test_search_api_needs_a_session_and_a_reason(client, caplog):
    now = time.time()
    batch = _batch(
        [read(1, "鲁A12345", at=now - 60), read(2, "鲁A99235", at=now - 30), read(3, "鲁B12345", at=now)]
    )
    client.app[keys.INGEST].handle(TOPIC, batch, now).result(10)
    assert (await client.get("/api/v1/reads?plate=鲁A12345&reason=x")).status == 401
    await client.post("/login", json={"code": "246810"})
    missing = await client.get("/api/v1/reads", params={"plate": "鲁A12345"})
    assert missing.status == 400 and "reason" in (await missing.json())["error"]
    caplog.set_level("INFO", logger="central.web")
    resp = await client.get("/api/v1/reads", params={"plate": "鲁a12345", "reason": "案件 2026-118"})
    assert resp.status == 200
    body = await resp.json()
    assert [r["seq"] for r in body["reads"]] == [1] and body["truncated"] is False
    assert "案件 2026-118" in caplog.text and "by access code" in caplog.text
    trail = (await (await client.get("/api/v1/audit", params={"action": "record.search"})).json())["records"]
    assert trail[0]["reason"] == "案件 2026-118" and trail[0]["target"] == "鲁a12345", (
        "every search is audited"
    )
    resp = await client.get("/api/v1/reads", params={"pattern": "*23?5", "reason": "线索"})
    assert sorted(r["plate"] for r in (await resp.json())["reads"]) == ["鲁A12345", "鲁B12345"]
    since = dt.datetime.fromtimestamp(now - 45, dt.UTC).isoformat()
    resp = await client.get("/api/v1/reads", params={"pattern": "鲁*5", "since": since, "reason": "r"})
    assert sorted(r["seq"] for r in (await resp.json())["reads"]) == [2, 3]


async def test_search_api_returns_what_the_edge_sent_with_a_read(client):
    """Vehicle colour and make, and whether the edge kept a picture, come back with the read."""
    now = time.time()
    batch = _batch(
        [
            read(
                1,
                "鲁A12345",
                at=now - 60,
                vehicle_colour="white",
                vehicle_brand="1036",
                has_evidence=True,
                colour="blue",
                vehicle_type="truck",
                confidence=93.5,
                lane=2,
            ),
            read(2, "鲁A12345", at=now - 30),
        ]
    )
    client.app[keys.INGEST].handle(TOPIC, batch, now).result(10)
    await client.post("/login", json={"code": "246810"})
    resp = await client.get("/api/v1/reads", params={"plate": "鲁A12345", "reason": "案件 2026-119"})
    assert resp.status == 200
    reads = {r["seq"]: r for r in (await resp.json())["reads"]}
    first = reads[1]
    assert (first["vehicle_colour"], first["vehicle_brand"], first["has_evidence"]) == ("white", "1036", True)
    assert (first["colour"], first["vehicle_type"], first["confidence"], first["lane"]) == (
        "blue",
        "truck",
        93.5,
        2,
    )
    assert (reads[2]["vehicle_colour"], reads[2]["vehicle_brand"], reads[2]["has_evidence"]) == (
        None,
        None,
        False,
    )


def test_search_of_a_day_file_from_before_the_attributes_column(tmp_path):
    """A day file written before the column existed is searched all the same, its reads without attributes."""
    from central.record.days import day_of, parse_offset
    from central.record.sqlite.dayfiles import INDEXES, TABLES

    s = HubStore(tmp_path / "hub.db")
    old_day = day_of(T0, parse_offset("+08:00"))
    s.record.root.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(s.record.root / file_name(old_day)) as db:
        for statement in TABLES + INDEXES:
            db.execute(statement.replace(", attributes TEXT", ""))
        db.execute("INSERT INTO plates (plate_id, plate, rplate) VALUES (1, '鲁B12345', '54321B鲁')")
        db.execute(
            "INSERT INTO reads (checkpoint, epoch, seq, digest, camera_id, captured_at, received_at, plate_id,"
            " plate_raw, plate_valid, no_plate) VALUES ('SD-DZ-001', 1, 1, x'00', 'cam', ?, ?, 1, '鲁B12345', 1, 0)",
            (T0, T0),
        )
    found = s.record.search_exact("鲁B12345", T0 - 60, T0 + 60)
    assert [(r.seq, r.vehicle_colour, r.has_evidence) for r in found.reads] == [(1, None, False)]


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"pattern": "鲁A%23"}, "not '%'"),
        ({"plate": "鲁A1", "pattern": "鲁A*"}, "exactly one"),
        ({}, "exactly one"),
        ({"plate": "鲁A1", "since": "yesterday"}, "since must be"),
        ({"plate": "鲁A1", "since": "2026-11-28T00:00:00"}, "UTC offset"),
        ({"plate": "鲁A1", "since": "2000000000", "until": "1000000000"}, "since is after until"),
        ({"plate": "鲁A1", "since": "0", "until": "1000000000"}, "at most 31 days"),
        ({"plate": "鲁A1", "since": "nan"}, "finite"),
    ],
)
async def test_search_api_refuses_bad_input_with_a_reason(client, params, needle):
    await client.post("/login", json={"code": "246810"})
    resp = await client.get("/api/v1/reads", params={"reason": "r", **params})
    assert resp.status == 400
    assert needle in (await resp.json())["error"]


def test_a_reader_never_creates_a_day_file(tmp_path):
    record = SqliteReadStore(tmp_path / "record")
    (tmp_path / "record").mkdir()
    assert record.search_exact("鲁A12345", T0 - 3 * DAY, T0).reads == []
    assert list(record.iter_reads(dt.date(2026, 11, 28))) == []
    assert record.passages_of(dt.date(2026, 11, 28)) == []
    assert list((tmp_path / "record").iterdir()) == []


async def test_sql_injection_through_search_fields_finds_nothing_and_breaks_nothing(client):
    """Search fields are bound parameters or refused patterns: quotes and SQL keywords are just text."""
    now = time.time()
    client.app[keys.INGEST].handle(TOPIC, _batch([read(1, "鲁A12345", at=now - 10)]), now).result(10)
    await client.post("/login", json={"code": "246810"})
    hostile = ["' OR '1'='1", "鲁A12345' --", "x'; DROP TABLE reads; --", '" OR ""="', "%", "_"]
    for text in hostile:
        resp = await client.get("/api/v1/reads", params={"plate": text, "reason": "test"})
        assert resp.status in (200, 400), text
        if resp.status == 200:
            assert (await resp.json())["reads"] == [], text
        resp = await client.get("/api/v1/reads", params={"pattern": text, "reason": "test"})
        assert resp.status == 400, f"a pattern with SQL in it is refused: {text}"
        lists = (await (await client.get("/api/v1/watchlists")).json())["watchlists"]
        resp = await client.get(
            f"/api/v1/watchlists/{lists[0]['watchlist']['list_id']}/entries", params={"q": text}
        )
        # LIKE's own wildcards are stripped from q, so "%" alone is an empty filter (every entry of a list
        # the caller may read anyway); anything with SQL in it matches no plate
        expected = 1 if text in ("%", "_") else 0
        assert resp.status == 200 and len((await resp.json())["entries"]) == expected, text
    resp = await client.get("/api/v1/reads", params={"plate": "鲁A12345", "reason": "test"})
    assert [r["seq"] for r in (await resp.json())["reads"]] == [1], "the record is intact"


def test_vehicle_attributes_are_kept_also_in_a_day_file_from_before_the_column(tmp_path):
    from central.record.days import day_of, parse_offset
    from central.record.sqlite.dayfiles import INDEXES, TABLES

    s = HubStore(tmp_path / "hub.db")
    s.start()
    try:
        old_day = day_of(T0 - DAY, parse_offset("+08:00"))
        old_file = s.record.root / file_name(old_day)  # a day file as the hub wrote it before
        with sqlite3.connect(old_file) as db:
            for statement in TABLES + INDEXES:
                db.execute(statement.replace(", attributes TEXT", ""))
            assert "attributes" not in {r[1] for r in db.execute("PRAGMA table_info(reads)")}
        assert put(
            s, read(1, at=T0 - DAY, vehicle_colour="white", vehicle_brand="1036", has_evidence=True)
        ).inserted
        assert put(s, read(2, at=T0, vehicle_brand="Volkswagen")).inserted  # a new day file
        assert put(s, read(3, at=T0)).inserted  # nothing to keep: NULL
    finally:
        s.stop()
    kept = {}
    for day in (old_day, day_of(T0, parse_offset("+08:00"))):
        with sqlite3.connect(s.record.root / file_name(day)) as db:
            kept.update(db.execute("SELECT seq, attributes FROM reads").fetchall())
    assert msgspec.json.decode(kept[1]) == {
        "vehicle_colour": "white",
        "vehicle_brand": "1036",
        "has_evidence": True,
    }
    assert msgspec.json.decode(kept[2]) == {"vehicle_brand": "Volkswagen"} and kept[3] is None
