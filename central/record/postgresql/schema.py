"""The hub's PostgreSQL schema as numbered migrations, applied in order like ``central.record.sqlite.schema``.

Migration 1 is the record of plain reads and passages (``central.record.postgresql.reads``): three tables
partitioned by day (``RANGE (day)``, one partition a day, made when the day's first row comes), the
``record_days`` table of days held with their counts, and the partitions' naming. The text a camera or an
edge sent is kept as ``bytea`` where it is only stored (PostgreSQL's ``text`` cannot hold a NUL); the
plates that are searched are ``text COLLATE "C"`` (code-point order, so an index range on a literal head
or tail is exact for Chinese characters, whatever the server's locale), with a plate that text cannot
hold stored exactly beside its searchable form (``plate_exact``).
"""

from __future__ import annotations

import time

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
]

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
