"""The hub's PostgreSQL schema as numbered migrations, applied in order like ``central.record.sqlite.schema``.

Migration 1 is the record of plain reads and passages (``central.record.postgresql.reads``): three tables
partitioned by day (``RANGE (day)``, one partition a day, made when the day's first row comes), the
``record_days`` table of days held with their counts, and the partitions' naming. The text a camera or an
edge sent is kept as ``bytea`` where it is only stored (PostgreSQL's ``text`` cannot hold a NUL); the
plates that are searched are ``text COLLATE "C"`` (code-point order, so an index range on a literal head
or tail is exact for Chinese characters, whatever the server's locale), with a plate that text cannot
hold stored exactly beside its searchable form (``plate_exact``).

Migrations 2 to 10 hold the hub's other stores: accounts and failed logins, the audit trail, webhook
deliveries, import jobs, cached evidence pictures, the edges' other events with alerts and quick-test
results, the daily statistics, and the watchlists with the field feed. Migration 11 is the progress of
``cordon store migrate`` (a SQLite hub's data copied in); migration 12 what the hubs sharing the database
follow of each other (the log of list changes, the alerts' news by time); migration 13 which hub is to
dispatch each alert; migration 14 the evidence requests not answered yet; migration 15 each hub's read rates
and the hub running each import job; migration 16 the ingest's counts split by hub (``hub_slot``).
"""

from __future__ import annotations

import time
import zlib

import psycopg

#: Each entry is one migration (its statements run in one transaction); never edit one that shipped.
MIGRATIONS: list[list[str]] = [
    # 1: the record of plain reads and passages, partitioned by day.
    [
        """CREATE TABLE record_days (
            day date PRIMARY KEY, reads bigint NOT NULL DEFAULT 0, passages bigint NOT NULL DEFAULT 0)""",
        """CREATE TABLE plates (
            day date NOT NULL, plate text COLLATE "C" NOT NULL, rplate text COLLATE "C" NOT NULL,
            UNIQUE (plate, day)) PARTITION BY RANGE (day)""",
        # (rplate, day): a tail's range and the day are checked in the index alone (an index-only scan).
        "CREATE INDEX plates_rplate ON plates (rplate, day)",
        """CREATE TABLE reads (
            day date NOT NULL, checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
            digest bytea NOT NULL, plate text COLLATE "C" NOT NULL, plate_exact bytea,
            camera_id bytea NOT NULL, camera_event_id bytea, captured_at double precision NOT NULL,
            edge_sent_at double precision, received_at double precision NOT NULL, plate_raw bytea NOT NULL,
            plate_valid boolean NOT NULL, plate_problem bytea, no_plate boolean NOT NULL, colour bytea,
            vehicle_type bytea, confidence double precision, lane integer, direction bytea, attributes bytea,
            UNIQUE (checkpoint, epoch, seq, day)) PARTITION BY RANGE (day)""",
        "CREATE INDEX reads_plate ON reads (plate, captured_at)",
        """CREATE TABLE passages (
            day date NOT NULL, checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
            digest bytea NOT NULL, plate text COLLATE "C" NOT NULL, plate_exact bytea, no_plate boolean NOT NULL,
            colour bytea, vehicle_type bytea, first_seen double precision NOT NULL,
            last_seen double precision NOT NULL, best_seq bigint NOT NULL, read_seqs bigint[] NOT NULL,
            cameras bytea[] NOT NULL, received_at double precision NOT NULL,
            UNIQUE (checkpoint, epoch, seq, day)) PARTITION BY RANGE (day)""",
        "CREATE INDEX passages_plate ON passages (plate, first_seen)",
        # Companion vehicles: who passed this checkpoint within a few minutes of that moment.
        "CREATE INDEX passages_checkpoint ON passages (checkpoint, first_seen)",
    ],
    # 2: people and their roles (central.record.postgresql.users); the display name is what an admin
    # typed, kept as bytes like any text PostgreSQL's text type cannot always hold.
    [
        """CREATE TABLE users (
            username text PRIMARY KEY, display_name bytea NOT NULL, role text NOT NULL, checkpoint text,
            password_hash text NOT NULL, disabled boolean NOT NULL DEFAULT false,
            generation bigint NOT NULL DEFAULT 0, token_hash text, created_at double precision NOT NULL,
            updated_at double precision NOT NULL)""",
        "CREATE UNIQUE INDEX users_token ON users (token_hash) WHERE token_hash IS NOT NULL",
        # Failed logins per account (u:NAME) and address (a:ADDRESS), shared by every hub on the database.
        "CREATE TABLE login_failures (key text NOT NULL, at double precision NOT NULL)",
        "CREATE INDEX login_failures_key ON login_failures (key, at)",
        "CREATE INDEX login_failures_at ON login_failures (at)",
    ],
    # 3: the audit trail (central.record.postgresql.audit): append-only, hash-chained. Its text is kept as
    # bytes (a reason may hold a NUL) so that every record hashes back to what it was.
    [
        """CREATE TABLE audit (
            id bigint PRIMARY KEY, at double precision NOT NULL, actor bytea NOT NULL, role bytea NOT NULL,
            action bytea NOT NULL, target bytea NOT NULL, reason bytea NOT NULL, detail bytea NOT NULL,
            prev_hash text NOT NULL, hash text NOT NULL)""",
        "CREATE INDEX audit_at ON audit (at)",
        "CREATE INDEX audit_actor ON audit (actor, at)",
        "CREATE INDEX audit_action ON audit (action, at)",
        """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$""",
        """CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
            FOR EACH ROW EXECUTE FUNCTION audit_append_only()""",
        """CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
            FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()""",
    ],
    # 4: what each webhook was given (delivered, refused, gave up), so a restart resends only the rest
    [
        """CREATE TABLE webhook_deliveries (hook text NOT NULL, alert_id text COLLATE "C" NOT NULL, outcome text NOT NULL,
            detail bytea, at double precision NOT NULL, PRIMARY KEY (hook, alert_id))""",
    ],
    # 5: watchlist imports in progress and their outcome, by job id (their status as JSON)
    [
        """CREATE TABLE import_jobs (job_id text PRIMARY KEY, status bytea NOT NULL,
            updated_at double precision NOT NULL)""",
    ],
    # 6: pictures fetched from the edges, by (checkpoint, epoch, seq, kind)
    [
        """CREATE TABLE evidence (checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
            kind text NOT NULL, data bytea NOT NULL, kept_at double precision NOT NULL,
            PRIMARY KEY (checkpoint, epoch, seq, kind))""",
        "CREATE INDEX evidence_kept ON evidence (kept_at)",
    ],
    # 7: events from the edges other than reads and passages, and alerts (central.record.postgresql.events).
    # What an edge sent as free text is kept as bytes; the ids that are joined and looked up are text in
    # code-point order, a NUL in one stored as U+FFFD (the exact id is in the alert's body).
    [
        """CREATE TABLE events (
            checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL, kind text NOT NULL,
            digest bytea NOT NULL, received_at double precision NOT NULL, PRIMARY KEY (checkpoint, epoch, seq))""",
        """CREATE TABLE alerts (
            alert_id text COLLATE "C" PRIMARY KEY, checkpoint text NOT NULL, epoch bigint NOT NULL,
            seq bigint NOT NULL, entry_id text COLLATE "C" NOT NULL, list_id text COLLATE "C" NOT NULL,
            action text NOT NULL, priority integer NOT NULL, raised_at double precision NOT NULL,
            body bytea NOT NULL, dispatched_at double precision)""",
        "CREATE INDEX alerts_raised ON alerts (raised_at)",
        "CREATE INDEX alerts_undispatched ON alerts (dispatched_at) WHERE dispatched_at IS NULL",
        "CREATE INDEX alerts_entry ON alerts (list_id, entry_id, raised_at)",
        """CREATE TABLE checkpoints (
            checkpoint text PRIMARY KEY, online boolean NOT NULL DEFAULT false, epoch bigint, status bytea,
            last_seen double precision, clock_offset_s double precision, feed_version bigint,
            dropped_reads bigint NOT NULL DEFAULT 0)""",
        """CREATE TABLE edge_hits (checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
            read_seq bigint NOT NULL, alert_id text COLLATE "C" NOT NULL, entry_id text COLLATE "C" NOT NULL,
            list_id text COLLATE "C" NOT NULL, kind text NOT NULL, score double precision NOT NULL,
            explanation bytea NOT NULL, feed_version bigint NOT NULL, matcher_version bytea NOT NULL,
            raised_at double precision NOT NULL, thumbnail bytea, PRIMARY KEY (checkpoint, epoch, seq))""",
        "CREATE INDEX edge_hits_read ON edge_hits (checkpoint, epoch, read_seq)",
        """CREATE TABLE gaps (checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
            lo bigint NOT NULL, hi bigint NOT NULL, count bigint NOT NULL, reason bytea NOT NULL,
            dropped_at double precision NOT NULL, received_at double precision NOT NULL,
            PRIMARY KEY (checkpoint, epoch, seq, lo))""",
        """CREATE TABLE alert_outcomes (checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
            alert_id text COLLATE "C" NOT NULL, outcome text NOT NULL, note bytea NOT NULL, officer bytea NOT NULL,
            acknowledged_at double precision NOT NULL, alert_raised_at double precision,
            received_at double precision NOT NULL, n bigint GENERATED ALWAYS AS IDENTITY,
            PRIMARY KEY (checkpoint, epoch, seq))""",
        # n: the order outcomes were stored in, which decides between two acknowledged at the same moment.
        "CREATE INDEX alert_outcomes_alert ON alert_outcomes (alert_id, acknowledged_at, n)",
        """CREATE TABLE kit_results (checkpoint text NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL,
            result_id bytea NOT NULL, id_hash text NOT NULL, id_last4 bytea NOT NULL, kit_model bytea NOT NULL,
            result text NOT NULL, officer bytea NOT NULL, sampled_at double precision NOT NULL,
            read_at double precision NOT NULL, kit_expired boolean NOT NULL, outside_read_window boolean NOT NULL,
            person_hits bytea NOT NULL, body bytea NOT NULL, received_at double precision NOT NULL,
            PRIMARY KEY (checkpoint, epoch, seq))""",
        "CREATE INDEX kit_results_time ON kit_results (sampled_at)",
        "CREATE INDEX kit_results_subject ON kit_results (id_hash)",
    ],
    # 8: the command center's daily statistics (central.record.postgresql.stats)
    [
        """CREATE TABLE daily_counts (day date NOT NULL, checkpoint text NOT NULL, reads bigint NOT NULL DEFAULT 0,
            passages bigint NOT NULL DEFAULT 0, no_plate bigint NOT NULL DEFAULT 0, PRIMARY KEY (day, checkpoint))""",
        """CREATE TABLE camera_samples (day date NOT NULL, checkpoint text NOT NULL, camera text NOT NULL,
            samples bigint NOT NULL DEFAULT 0, stale bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (day, checkpoint, camera))""",
    ],
    # 9: the rest of the alert store: folded hits, alarm receipts, dead letters; alerts get a position in
    # commit order (``pos``, taken under a lock held to the commit: central.record.postgresql.events).
    [
        """CREATE TABLE alert_folds (alert_id text COLLATE "C" PRIMARY KEY, into_id text COLLATE "C" NOT NULL,
            checkpoint text NOT NULL, captured_at double precision NOT NULL, raised_at double precision NOT NULL)""",
        "CREATE INDEX alert_folds_into ON alert_folds (into_id)",
        """CREATE TABLE alert_receipts (alert_id text COLLATE "C" NOT NULL, checkpoint text NOT NULL,
            shown_at double precision, shown_by bytea NOT NULL, acknowledged_at double precision, outcome text,
            officer bytea NOT NULL, received_at double precision NOT NULL, PRIMARY KEY (alert_id, checkpoint))""",
        """CREATE TABLE dead_letters (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            received_at double precision NOT NULL, source bytea NOT NULL, checkpoint bytea, reason bytea NOT NULL,
            raw bytea NOT NULL, raw_bytes integer NOT NULL)""",
        "CREATE INDEX dead_letters_received ON dead_letters (received_at)",
        "ALTER TABLE alerts ADD COLUMN pos bigint",
        "CREATE UNIQUE INDEX alerts_pos ON alerts (pos)",
    ],
    # 10: watchlists and the field feed (central.record.postgresql.watchlists); feed versions are taken
    # under a lock held to the commit, so they commit in order.
    [
        """CREATE TABLE wl_lists (list_id text COLLATE "C" PRIMARY KEY, body bytea NOT NULL,
            updated_at double precision NOT NULL, updated_by bytea)""",
        """CREATE TABLE wl_entries (entry_id text COLLATE "C" PRIMARY KEY, list_id text COLLATE "C" NOT NULL,
            plate text COLLATE "C" NOT NULL, body bytea NOT NULL, updated_at double precision NOT NULL,
            updated_by bytea)""",
        "CREATE INDEX wl_entries_list ON wl_entries (list_id, entry_id)",
        "CREATE INDEX wl_entries_plate ON wl_entries (plate)",
        """CREATE TABLE feed_changes (version bigint PRIMARY KEY, at double precision NOT NULL, actor bytea,
            body bytea NOT NULL)""",
        "CREATE TABLE hub_meta (key text PRIMARY KEY, value text NOT NULL)",
    ],
    # 11: what `cordon store migrate` copied from a SQLite hub (central.record.postgresql.load): each part
    # (a table of hub.db, a day's reads or passages, the cached evidence) with its source, the rows copied
    # and the key to go on after, committed with the rows, so an interrupted migration goes on where it
    # stopped; kept afterwards as the record of where the data came from.
    [
        """CREATE TABLE store_migration (part text PRIMARY KEY, source text NOT NULL,
            copied bigint NOT NULL DEFAULT 0, after text, done boolean NOT NULL DEFAULT false,
            updated_at double precision NOT NULL)""",
    ],
    # 12: what the hubs sharing the database follow of each other: the log of list changes
    # (central/record/watchlists.py: each applied change, covert lists too, at its position, taken under the
    # feed's lock, so positions follow commits), and the times the alerts' later news was stored at, which
    # the consoles of every hub read recent news by (AlertStore.touched_since)
    [
        "CREATE TABLE list_changes (position bigint PRIMARY KEY, at double precision NOT NULL, body bytea NOT NULL)",
        "CREATE INDEX alert_folds_raised ON alert_folds (raised_at)",
        "CREATE INDEX alert_outcomes_received ON alert_outcomes (received_at)",
        "CREATE INDEX alert_receipts_received ON alert_receipts (received_at)",
    ],
    # 13: which hub is to dispatch each alert not dispatched yet (the one that raised it, or the one that
    # took it over when that hub was gone: central.alerts.dispatch, PgEvents.claim_orphans)
    [
        "ALTER TABLE alerts ADD COLUMN dispatch_hub text",
    ],
    # 14: the evidence pictures asked of the edges and not come yet (central.alerts.evidence), so a reply
    # landing on any hub is known for a request, and the reads asked of an offline checkpoint are asked
    # again by whichever hub holds the evidence duty
    [
        """CREATE TABLE evidence_requests (request_id text PRIMARY KEY, checkpoint text NOT NULL,
            epoch bigint NOT NULL, seq bigint NOT NULL, asked_at double precision NOT NULL,
            deferred boolean NOT NULL DEFAULT false)""",
        "CREATE INDEX evidence_requests_read ON evidence_requests (checkpoint, epoch, seq)",
        "CREATE INDEX evidence_requests_asked ON evidence_requests (asked_at)",
    ],
    # 15: each hub's reads per checkpoint over the last minute, as it last said (central.ingest.pipeline's
    # ReadRates): the map's rate is their sum over the hubs that said it lately; and the hub running each
    # import job (a job whose hub is gone failed)
    [
        """CREATE TABLE hub_rates (hub text NOT NULL, checkpoint text NOT NULL, per_minute bigint NOT NULL,
            at double precision NOT NULL, PRIMARY KEY (hub, checkpoint))""",
        "ALTER TABLE import_jobs ADD COLUMN hub text",
    ],
    # 16: the counts the ingest keeps in its transaction, one row per hub (its slot: ``hub_slot``), so two
    # hubs never update one row (issue 23: each waited for the other's row lock to its commit): a day's
    # reads and passages, and the statistics' (day, checkpoint). Readers add the slots to what
    # ``record_days`` and ``daily_counts`` hold, which are left as they are: the counts of before this
    # migration, and those a hub of an older release still adds to them during a rolling upgrade (it
    # reads them alone, as it did). Folding them into the slots is for a later release, once no hub
    # older than this one runs (docs/deploy.md, "migrations only expand").
    [
        """CREATE TABLE record_day_counts (day date NOT NULL, slot integer NOT NULL,
            reads bigint NOT NULL DEFAULT 0, passages bigint NOT NULL DEFAULT 0, PRIMARY KEY (day, slot))""",
        """CREATE TABLE daily_slot_counts (day date NOT NULL, checkpoint text NOT NULL, slot integer NOT NULL,
            reads bigint NOT NULL DEFAULT 0, passages bigint NOT NULL DEFAULT 0, no_plate bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (day, checkpoint, slot))""",
    ],
]


#: Every count of the record's days, as rows of (day, reads, passages) to sum: the per-hub slots and what
#: ``record_days`` holds (migration 16).
DAY_COUNTS = "(SELECT day, reads, passages FROM record_days UNION ALL SELECT day, reads, passages FROM record_day_counts)"
#: Every count of the statistics, as rows of (day, checkpoint, reads, passages, no_plate) to sum, likewise.
DAILY_COUNTS = (
    "(SELECT day, checkpoint, reads, passages, no_plate FROM daily_counts UNION ALL "
    "SELECT day, checkpoint, reads, passages, no_plate FROM daily_slot_counts)"
)


def hub_slot(hub: str) -> int:
    """The row of the per-hub counts (migration 16) a hub of this name adds to: a stable hash of the name
    (0 for none). Two hubs whose names share a slot only wait for each other, as before; counts stay right."""
    return zlib.crc32(hub.encode("utf-8")) & 0x7FFFFFFF


#: Serializes migrations when several hubs start at once (any constant unique to Cordon).
MIGRATION_LOCK = 0x636F72646F6E


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply the migrations this database has not seen yet, each in its own transaction; returns them."""
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at double precision)"
        )
    for version, statements in enumerate(MIGRATIONS, start=1):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,)).fetchone():
                continue
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]  # constant text
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, time.time()))
            applied.append(version)
    return applied
