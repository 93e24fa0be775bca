"""One contract for the record of plain reads and passages, run against both stores: the SQLite day files
and PostgreSQL (a real cluster of the tests' own, a fresh database per test). They must behave the same:
insert, resend and conflict; days in the configured offset; exact and partial search (Chinese
characters, short literal runs, a plate holding a NUL); routes and companions; retention of a day; counts."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from central.record.platepattern import PatternError
from central.record.reads import Stored
from central.record.sqlite.store import HubStore
from protocols.messages import Passage, PlateRead

DAY = 86400.0
# 2026-11-27 16:30 UTC is 2026-11-28 00:30 in China (+08:00)
T0 = dt.datetime(2026, 11, 27, 16, 30, tzinfo=dt.UTC).timestamp()
CP = "SD-DZ-001"


def read(seq, plate="鲁B12345", at=T0, **kw):
    kw.setdefault("plate_raw", plate)
    return PlateRead(seq=seq, camera_id="cam", captured_at=at, plate=plate, plate_valid=True, **kw)


def passage(seq, plate="鲁B12345", at=T0, checkpoint_cameras=("cam",), **kw):
    return Passage(
        seq=seq,
        plate=plate,
        first_seen=at,
        last_seen=at + 4,
        best_seq=seq,
        read_seqs=[seq],
        cameras=list(checkpoint_cameras),
        **kw,
    )


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp_path, utc_offset="+08:00"):
        self.hub = HubStore(tmp_path / "hub.db", utc_offset=utc_offset)
        self.hub.start()
        self.store = self.hub.record

    def put(self, items):
        def job(db):
            return [self.store.insert(db, cp, epoch, ev, sent, got) for cp, epoch, ev, sent, got in items]

        return self.hub.submit(job).result(30)

    def on_writer(self, fn):
        return self.hub.submit(fn).result(30)

    def purge(self, cutoff):
        return self.hub.purge_before(cutoff)

    def stop(self):
        self.hub.stop()


class PostgresBackend:
    name = "postgresql"

    def __init__(self, dsn, utc_offset="+08:00"):
        from central.record.postgresql.reads import PgReadStore

        self.store = PgReadStore(dsn, utc_offset=utc_offset)
        self.store.start()

    def put(self, items):
        return self.store.write(items)

    def on_writer(self, fn):
        return self.store.run(fn)

    def purge(self, cutoff):
        return self.store.purge_before(cutoff)

    def stop(self):
        self.store.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_factory(request, tmp_path):
    made = []

    def make(utc_offset="+08:00"):
        if request.param == "sqlite":
            b = SqliteBackend(tmp_path / f"s{len(made)}", utc_offset)
        else:
            b = PostgresBackend(request.getfixturevalue("pg_dsn"), utc_offset)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def backend(backend_factory):
    return backend_factory()


def put1(backend, event, checkpoint=CP, epoch=1) -> Stored:
    return backend.put([(checkpoint, epoch, event, T0, time.time())])[0]


def everything(backend):
    return [r for day in backend.store.days() for r in backend.store.iter_reads(day)]


# -- exactly once -----------------------------------------------------------------------------------


def test_insert_resend_and_conflict(backend):
    assert put1(backend, read(1, "鲁B11111")) == Stored(True)
    assert put1(backend, read(1, "鲁B11111")) == Stored(False, seen_before=True)
    other = put1(backend, read(1, "鲁B22222"))
    assert not other.inserted and not other.seen_before
    assert other.conflict == f"event {CP}/1/1 was already stored with different content"
    assert put1(backend, read(1, "鲁B11111"), epoch=2).inserted, "another epoch is another event"
    assert put1(backend, read(1, "鲁B11111"), checkpoint="SD-DZ-002").inserted
    assert sorted((r.checkpoint, r.epoch, r.plate) for r in everything(backend)) == [
        (CP, 1, "鲁B11111"),
        (CP, 2, "鲁B11111"),
        ("SD-DZ-002", 1, "鲁B11111"),
    ]


def test_a_batch_tells_each_event_what_happened_in_order(backend):
    put1(backend, read(5, "鲁B55555"))
    put1(backend, passage(6, "鲁B66666"))
    got = backend.put(
        [
            (CP, 1, read(1, "鲁A00001"), T0, T0),
            (CP, 1, read(5, "鲁B55555"), T0, T0),  # a resend
            (CP, 1, read(6, "鲁B66666"), T0, T0),  # a passage's identity
            (CP, 1, passage(5, "鲁B55555"), T0, T0),  # a read's identity
            (CP, 1, read(2, "鲁A00002"), T0, T0),
            (CP, 1, read(2, "鲁A00002"), T0, T0),  # twice in one batch, same content
            (CP, 1, read(3, "鲁A00003"), T0, T0),
            (CP, 1, read(3, "鲁A99999"), T0, T0),  # twice in one batch, other content
            (CP, 1, passage(7, "鲁A00001"), T0, T0),
        ]
    )
    assert [(s.inserted, s.seen_before, s.conflict is not None) for s in got] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
        (False, False, True),
        (True, False, False),
        (False, True, False),
        (True, False, False),
        (False, False, True),
        (True, False, False),
    ]
    assert backend.store.counts().reads == 4 and backend.store.counts().passages == 2


def test_lookup_and_identity_taken_on_the_day_of_near_and_the_day_before(backend):
    put1(backend, read(1, "鲁A12345", at=T0, plate_raw="鲁A-12345", colour="blue", confidence=91.5, lane=2))
    put1(backend, passage(2, at=T0))
    store = backend.store
    found = backend.on_writer(lambda db: store.lookup_read(db, CP, 1, 1, T0 + DAY / 2))
    assert (found.seq, found.plate, found.plate_raw, found.colour, found.confidence, found.lane) == (
        1,
        "鲁A12345",
        "鲁A-12345",
        "blue",
        91.5,
        2,
    )
    assert backend.on_writer(lambda db: store.lookup_read(db, CP, 1, 1, T0 + 2 * DAY)) is None
    assert backend.on_writer(lambda db: store.lookup_read(db, CP, 1, 2, T0)) is None, "a passage is no read"
    assert backend.on_writer(lambda db: store.identity_taken(db, CP, 1, 2, T0 + 1))
    assert backend.on_writer(lambda db: store.identity_taken(db, CP, 1, 1, T0 + 1))
    assert not backend.on_writer(lambda db: store.identity_taken(db, CP, 1, 3, T0))
    assert not backend.on_writer(lambda db: store.identity_taken(db, CP, 2, 1, T0))


def test_a_read_comes_back_as_it_was_sent(backend):
    sent = read(
        9,
        "鲁A12345",
        plate_raw="蓝鲁A·12345",
        plate_problem=None,
        colour="blue",
        vehicle_type="car",
        confidence=87.25,
        lane=3,
        direction="out",
        camera_event_id="evt-1",
        vehicle_colour="白色",
        vehicle_brand="Volkswagen",
        has_evidence=True,
    )
    put1(backend, sent)
    (got,) = everything(backend)
    assert list(backend.store.iter_sightings(dt.date(2026, 11, 28))) == [(got, "白色", "Volkswagen")]
    for field in sent.__struct_fields__:
        if field in got.__struct_fields__:  # StoredRead has all but plate_problem
            assert getattr(got, field) == getattr(sent, field), field
    assert (got.checkpoint, got.epoch, got.seq) == (CP, 1, 9)


# -- days -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset, day", [("+08:00", "2026-11-28"), ("+00:00", "2026-11-27"), ("-05:00", "2026-11-27")]
)
def test_a_read_is_filed_under_its_day_in_the_configured_offset(backend_factory, offset, day):
    backend = backend_factory(offset)
    assert put1(backend, read(1)).inserted
    assert [d.isoformat() for d in backend.store.days()] == [day]


def test_midnight_splits_days_passages_go_by_first_seen_and_counts_follow(backend):
    midnight = dt.datetime(2026, 11, 28, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    put1(backend, read(1, at=midnight - 0.001))
    put1(backend, read(2, at=midnight))
    put1(backend, passage(3, at=midnight - 1))
    put1(backend, read(2, at=midnight))  # a resend is not counted again
    assert [d.isoformat() for d in backend.store.days()] == ["2026-11-27", "2026-11-28"]
    assert [q["seq"] for q in backend.store.passages_of(dt.date(2026, 11, 27))] == [3]
    assert [r.seq for r in backend.store.iter_reads(dt.date(2026, 11, 28))] == [2]
    counts = backend.store.counts()
    assert (counts.reads, counts.passages, counts.days) == (2, 1, 2)


def test_absurd_capture_times_are_filed_under_the_first_or_last_day(backend):
    put1(backend, read(1, at=-5e9))
    put1(backend, read(2, at=9e12))
    # The bounds are 1970-01-01 00:00 and 2099-12-31 23:59:59 UTC: the latter is 2100-01-01 at +08:00.
    assert [d.isoformat() for d in backend.store.days()] == ["1970-01-01", "2100-01-01"]
    assert put1(backend, read(1, at=-5e9)).seen_before


def test_a_passage_keeps_its_reads_and_cameras(backend):
    put1(backend, passage(4, "鲁C00001", checkpoint_cameras=("lane1", 'odd "name" \\ here')))
    (q,) = backend.store.passages_of(dt.date(2026, 11, 28))
    assert (q["seq"], q["plate"], q["best_seq"]) == (4, "鲁C00001", 4)
    assert (
        list(q["cameras"]) == ["lane1", 'odd "name" \\ here']
        or q["cameras"] == '["lane1","odd \\"name\\" \\\\ here"]'
    )


# -- search -----------------------------------------------------------------------------------------

PLATES = [
    "鲁A12345",
    "鲁A99235",
    "鲁A1235",
    "鲁AD12315",
    "鲁B12345",
    "冀A12345",
    "鲁Q8K2L1",
    "",
    "鲁A23X5",
    "使014578",
    "粤Z1234港",
    "鲁A12345挂",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(request, tmp_path_factory):
    """One store per backend for the search tests of this module, which only read it."""
    if request.param == "sqlite":
        backend = SqliteBackend(tmp_path_factory.mktemp("filled"))
    else:
        cluster = request.getfixturevalue("pg_cluster")
        cluster.drop_database("contract_filled")
        backend = PostgresBackend(cluster.create_database("contract_filled"))
    backend.put([(CP, 1, read(i + 1, p, at=T0 + i, no_plate=not p), T0, T0) for i, p in enumerate(PLATES)])
    put1(backend, read(100, "鲁A12345", at=T0 - 3 * DAY))
    yield backend
    backend.stop()
    if request.param == "postgresql":
        request.getfixturevalue("pg_cluster").drop_database("contract_filled")


def oracle(pattern, plates):
    rx = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z")
    return sorted(p for p in plates if rx.match(p))


@pytest.mark.parametrize(
    "pattern",
    [
        "鲁A*23?5",
        "*23?5",
        "鲁A?2345",
        "*2345",
        "鲁A*",  # a literal head of two characters, one of them Chinese
        "鲁?1*5",
        "*K2L?",
        "*4港",  # a literal tail of two characters, ending Chinese
        "*5挂",
        "使0*",
        "鲁AD*",
        "鲁A1235",  # no wildcard: an exact plate
        "冀A*",
        "??12345",
        "*A*3*",  # no literal head or tail: every plate of the day is looked at
        "*Z1?34*",
    ],
)
def test_partial_search_matches_what_the_pattern_says(filled, pattern):
    found = filled.store.search_pattern(pattern, T0 - DAY, T0 + DAY)
    assert sorted(r.plate for r in found.reads) == oracle(pattern, [p for p in PLATES if p])


def test_exact_search_over_a_range_newest_first(filled):
    store = filled.store
    found = store.search_exact("鲁a12345", T0 - 5 * DAY, T0 + DAY)
    assert [(r.seq, r.plate) for r in found.reads] == [(1, "鲁A12345"), (100, "鲁A12345")]
    assert found.days == 2 and not found.truncated
    assert [r.seq for r in store.search_exact("鲁A12345", T0 - DAY, T0 + DAY).reads] == [1]
    assert store.search_exact("鲁A00000", T0 - 5 * DAY, T0 + DAY).reads == []
    limited = store.search_exact("鲁A12345", T0 - 5 * DAY, T0 + DAY, limit=1)
    assert [r.seq for r in limited.reads] == [1] and limited.truncated
    assert store.search_exact("鲁A12345", T0 - 5 * DAY, T0 + DAY, checkpoint="SD-XX-999").reads == []
    assert len(store.search_exact("鲁A12345", T0 - 5 * DAY, T0 + DAY, checkpoint=CP).reads) == 2
    assert store.search_exact("鲁A12345", T0 + 10 * DAY, T0 + 11 * DAY).days == 0


def test_partial_search_is_newest_first_and_limited(filled):
    found = filled.store.search_pattern("鲁A*5", T0 - 5 * DAY, T0 + DAY, limit=3)
    assert len(found.reads) == 3 and found.truncated
    times = [r.captured_at for r in found.reads]
    assert times == sorted(times, reverse=True)


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
def test_patterns_with_sql_metacharacters_are_refused_clearly(filled, bad, why):
    with pytest.raises(PatternError, match=re.escape(why)):
        filled.store.search_pattern(bad, T0 - DAY, T0 + DAY)
    assert len(everything(filled)) == len(PLATES) + 1, "nothing was touched"


# -- text PostgreSQL's text refuses -----------------------------------------------------------------


def test_a_nul_in_the_camera_text_round_trips(backend):
    """The edge's normalizer flags a NUL and keeps the camera's text raw: the record keeps it exactly."""
    sent = read(
        1,
        "鲁A12345",
        plate_raw="鲁A\x0012345",
        camera_event_id="e\x00v",
        plate_problem="control character '\\x00'",
    )
    sent = PlateRead(**{**{f: getattr(sent, f) for f in sent.__struct_fields__}, "plate_valid": False})
    assert put1(backend, sent).inserted
    assert put1(backend, sent).seen_before
    (got,) = backend.store.search_exact("鲁A12345", T0 - DAY, T0 + DAY).reads
    assert (got.plate_raw, got.camera_event_id, got.plate_valid) == ("鲁A\x0012345", "e\x00v", False)


def test_a_plate_with_a_nul_round_trips_and_is_found_by_a_pattern(backend):
    """Only a broken edge sends a plate (not just its raw text) with a NUL: it is kept exactly."""
    weird = "鲁A\x0012"
    assert put1(backend, read(1, weird, plate_raw=weird)).inserted
    assert put1(backend, read(1, weird, plate_raw=weird)).seen_before
    assert put1(backend, read(1, "鲁A\ufffd12")).conflict, "a look-alike is other content"
    put1(backend, passage(2, weird))
    found = backend.on_writer(lambda db: backend.store.lookup_read(db, CP, 1, 1, T0))
    assert (found.plate, found.plate_raw) == (weird, weird)
    assert [r.plate for r in backend.store.search_pattern("鲁A*", T0 - DAY, T0 + DAY).reads] == [weird]
    assert [q["plate"] for q in backend.store.passages_of(dt.date(2026, 11, 28))] == [weird]


# -- routes and companions --------------------------------------------------------------------------

LOAD, SCOUT, STRANGER = "鲁Q8K2L1", "鲁B7T5C2", "冀E33333"


@pytest.fixture
def convoy(backend):
    """A load through four checkpoints over two days, its scout 40-60 s ahead at three of them, a
    stranger near it once, and a no-plate vehicle beside it every time."""
    items = []
    seq = 0

    def add(plate, cp, at, **kw):
        nonlocal seq
        seq += 1
        items.append((cp, 1, passage(seq, plate, at=at, **kw), T0, T0))

    stops = [
        ("SD-A-001", T0 - DAY),
        ("SD-B-001", T0 - DAY + 3600),
        ("SD-C-001", T0 + 600),
        ("SD-D-001", T0 + 4000),
    ]
    for i, (cp, at) in enumerate(stops):
        add(LOAD, cp, at)
        add("", cp, at + 2, no_plate=True)
        if i != 1:
            add(SCOUT, cp, at - 40 - 10 * i)
    add(STRANGER, "SD-C-001", T0 + 650)
    add(SCOUT, "SD-A-001", T0 - 2 * DAY)  # far from any of the load's passages
    backend.put(items)
    return backend


def test_route_lists_a_plates_passages_oldest_first(convoy):
    found = convoy.store.route(LOAD, T0 - 3 * DAY, T0 + DAY)
    assert [p["checkpoint"] for p in found.reads] == ["SD-A-001", "SD-B-001", "SD-C-001", "SD-D-001"]
    assert found.days == 3 and not found.truncated
    first = found.reads[0]
    assert (first["plate"], first["first_seen"], first["last_seen"]) == (LOAD, T0 - DAY, T0 - DAY + 4)
    assert [p["checkpoint"] for p in convoy.store.route(LOAD, T0, T0 + DAY).reads] == ["SD-C-001", "SD-D-001"]
    limited = convoy.store.route(LOAD, T0 - 3 * DAY, T0 + DAY, limit=2)
    assert len(limited.reads) == 2 and limited.truncated


def test_companions_find_the_scout(convoy):
    found = convoy.store.companions(LOAD, T0 - 3 * DAY, T0 + DAY, window_s=120, min_shared=3)
    assert [(c.plate, c.shared) for c in found.found] == [(SCOUT, 3)]
    assert found.candidates == 1 and len(found.route) == 4
    scout = found.found[0]
    assert scout.mean_gap_s == 56.7
    assert [p["gap_s"] for p in scout.passages] == [-40.0, -60.0, -70.0]
    assert [p["checkpoint"] for p in scout.passages] == ["SD-A-001", "SD-C-001", "SD-D-001"]
    loose = convoy.store.companions(LOAD, T0 - 3 * DAY, T0 + DAY, window_s=120, min_shared=1)
    assert [(c.plate, c.shared) for c in loose.found] == [(SCOUT, 3), (STRANGER, 1)]


# -- retention --------------------------------------------------------------------------------------


def test_retention_drops_exactly_the_days_before_the_cutoff(backend):
    for i in range(5):
        put1(backend, read(i + 1, "鲁A12345", at=T0 - i * DAY))
        put1(backend, passage(100 + i, "鲁A12345", at=T0 - i * DAY))
    store = backend.store
    days = store.days()
    assert len(days) == 5
    assert backend.purge(days[2]) == days[:2]
    assert store.days() == days[2:]
    counts = store.counts()
    assert (counts.reads, counts.passages, counts.days) == (3, 3, 3)
    assert [r.seq for r in store.search_exact("鲁A12345", T0 - 9 * DAY, T0 + DAY).reads] == [1, 2, 3]
    assert len(store.route("鲁A12345", T0 - 9 * DAY, T0 + DAY).reads) == 3
    assert backend.purge(days[2]) == []
    # A late read for a purged day is stored again, and the next purge takes it.
    assert put1(backend, read(5, "鲁A12345", at=T0 - 4 * DAY)).inserted
    assert store.days() == [days[0], *days[2:]]
    assert backend.purge(days[2]) == [days[0]]
    assert store.counts().reads == 3
