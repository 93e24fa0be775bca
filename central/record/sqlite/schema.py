"""hub.db's tables: the numbered migrations, applied in order by ``central.record.sqlite.store.migrate``.

A migration is never edited once released: a change is a new migration at the end of the list.
"""

from runtime import deadletters

#: the audit trail (central/people/audit.py): append-only, hash-chained
AUDIT_SCHEMA = [
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
    "CREATE INDEX audit_at ON audit (at)",
    "CREATE INDEX audit_actor ON audit (actor, at)",
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
]

#: people and their roles (central/people/users.py)
USERS_SCHEMA = [
    """CREATE TABLE users (
        username TEXT PRIMARY KEY, display_name TEXT NOT NULL, role TEXT NOT NULL, checkpoint TEXT,
        password_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0,
        token_hash TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL)""",
    "CREATE UNIQUE INDEX users_token ON users (token_hash) WHERE token_hash IS NOT NULL",
]

#: repeated hits folded into the open alert (central/ingest/folding.py)
FOLDING_SCHEMA = [
    """CREATE TABLE alert_folds (alert_id TEXT PRIMARY KEY, into_id TEXT NOT NULL, checkpoint TEXT NOT NULL,
        captured_at REAL NOT NULL, raised_at REAL NOT NULL)""",
    "CREATE INDEX alert_folds_into ON alert_folds (into_id)",
    "CREATE INDEX alerts_entry ON alerts (list_id, entry_id, raised_at)",
]

#: daily statistics (central/intel/stats.py)
STATS_SCHEMA = [
    """CREATE TABLE daily_counts (day TEXT NOT NULL, checkpoint TEXT NOT NULL, reads INTEGER NOT NULL DEFAULT 0,
        passages INTEGER NOT NULL DEFAULT 0, no_plate INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (day, checkpoint))""",
    """CREATE TABLE camera_samples (day TEXT NOT NULL, checkpoint TEXT NOT NULL, camera TEXT NOT NULL,
        samples INTEGER NOT NULL DEFAULT 0, stale INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (day, checkpoint, camera))""",
]

MIGRATIONS: list[list[str]] = [
    # 1: the spine
    [
        """CREATE TABLE events (
            checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            kind TEXT NOT NULL, digest BLOB NOT NULL, received_at REAL NOT NULL,
            PRIMARY KEY (checkpoint, epoch, seq)) WITHOUT ROWID""",
        """CREATE TABLE reads (
            id INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            camera_id TEXT NOT NULL, camera_event_id TEXT, captured_at REAL NOT NULL, edge_sent_at REAL,
            received_at REAL NOT NULL, plate TEXT NOT NULL, plate_raw TEXT NOT NULL, plate_valid INTEGER NOT NULL,
            plate_problem TEXT, no_plate INTEGER NOT NULL, colour TEXT, vehicle_type TEXT, confidence REAL,
            lane INTEGER, direction TEXT)""",
        "CREATE INDEX reads_plate ON reads (plate, captured_at)",
        "CREATE INDEX reads_time ON reads (captured_at)",
        """CREATE TABLE passages (
            id INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            plate TEXT NOT NULL, no_plate INTEGER NOT NULL, colour TEXT, vehicle_type TEXT,
            first_seen REAL NOT NULL, last_seen REAL NOT NULL, best_seq INTEGER NOT NULL,
            read_seqs TEXT NOT NULL, cameras TEXT NOT NULL, received_at REAL NOT NULL)""",
        "CREATE INDEX passages_plate ON passages (plate, first_seen)",
        """CREATE TABLE alerts (
            alert_id TEXT PRIMARY KEY, checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            entry_id TEXT NOT NULL, list_id TEXT NOT NULL, action TEXT NOT NULL, priority INTEGER NOT NULL,
            raised_at REAL NOT NULL, body BLOB NOT NULL, dispatched_at REAL)""",
        "CREATE INDEX alerts_raised ON alerts (raised_at)",
        "CREATE INDEX alerts_undispatched ON alerts (dispatched_at) WHERE dispatched_at IS NULL",
        """CREATE TABLE checkpoints (
            checkpoint TEXT PRIMARY KEY, online INTEGER NOT NULL DEFAULT 0, epoch INTEGER,
            status TEXT, last_seen REAL, clock_offset_s REAL)""",
        *deadletters.SCHEMA,
    ],
    # 2: watchlists and the field feed
    [
        "CREATE TABLE wl_lists (list_id TEXT PRIMARY KEY, body BLOB NOT NULL, updated_at REAL NOT NULL, updated_by TEXT)",
        """CREATE TABLE wl_entries (entry_id TEXT PRIMARY KEY, list_id TEXT NOT NULL, plate TEXT NOT NULL,
            body BLOB NOT NULL, updated_at REAL NOT NULL, updated_by TEXT)""",
        "CREATE INDEX wl_entries_list ON wl_entries (list_id)",
        "CREATE INDEX wl_entries_plate ON wl_entries (plate)",
        "CREATE TABLE feed_changes (version INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT, body BLOB NOT NULL)",
        "CREATE TABLE hub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "ALTER TABLE checkpoints ADD COLUMN feed_version INTEGER",
        """CREATE TABLE edge_hits (checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            read_seq INTEGER NOT NULL, alert_id TEXT NOT NULL, entry_id TEXT NOT NULL, list_id TEXT NOT NULL,
            kind TEXT NOT NULL, score REAL NOT NULL, explanation TEXT NOT NULL, feed_version INTEGER NOT NULL,
            matcher_version TEXT NOT NULL, raised_at REAL NOT NULL, PRIMARY KEY (checkpoint, epoch, seq))""",
        "CREATE INDEX edge_hits_read ON edge_hits (checkpoint, epoch, read_seq)",
    ],
    # 3: gaps an edge reported (plain reads dropped from its outbox at its disk quota)
    [
        """CREATE TABLE gaps (checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            lo INTEGER NOT NULL, hi INTEGER NOT NULL, count INTEGER NOT NULL, reason TEXT NOT NULL,
            dropped_at REAL NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (checkpoint, epoch, seq, lo))""",
        "ALTER TABLE checkpoints ADD COLUMN dropped_reads INTEGER NOT NULL DEFAULT 0",
    ],
    # 4: what each webhook was given (delivered, refused, gave up), so a restart resends only the rest
    [
        """CREATE TABLE webhook_deliveries (hook TEXT NOT NULL, alert_id TEXT NOT NULL, outcome TEXT NOT NULL,
            detail TEXT, at REAL NOT NULL, PRIMARY KEY (hook, alert_id)) WITHOUT ROWID""",
    ],
    # 5: the audit trail (central/people/audit.py): append-only, hash-chained
    AUDIT_SCHEMA,
    # 6: people and their roles (central/people/users.py)
    USERS_SCHEMA,
    # 7: what came of each alert, as the officers recorded it (a history: an outcome can be corrected)
    [
        """CREATE TABLE alert_outcomes (checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            alert_id TEXT NOT NULL, outcome TEXT NOT NULL, note TEXT NOT NULL, officer TEXT NOT NULL,
            acknowledged_at REAL NOT NULL, alert_raised_at REAL, received_at REAL NOT NULL,
            PRIMARY KEY (checkpoint, epoch, seq))""",
        "CREATE INDEX alert_outcomes_alert ON alert_outcomes (alert_id, acknowledged_at)",
    ],
    # 8: the thumbnail an edge hit carried, for an alert made when its read arrives later
    [
        "ALTER TABLE edge_hits ADD COLUMN thumbnail TEXT",
    ],
    # 9: folding repeated hits into the open alert (central/ingest/folding.py)
    FOLDING_SCHEMA,
    # 10: drug quick-test results from the tablets; body is the KitResult as sent
    [
        """CREATE TABLE kit_results (checkpoint TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
            result_id TEXT NOT NULL, id_hash TEXT NOT NULL, id_last4 TEXT NOT NULL, kit_model TEXT NOT NULL,
            result TEXT NOT NULL, officer TEXT NOT NULL, sampled_at REAL NOT NULL, read_at REAL NOT NULL,
            kit_expired INTEGER NOT NULL, outside_read_window INTEGER NOT NULL, person_hits TEXT NOT NULL,
            body BLOB NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (checkpoint, epoch, seq))""",
        "CREATE INDEX kit_results_time ON kit_results (sampled_at)",
        "CREATE INDEX kit_results_subject ON kit_results (id_hash)",
    ],
    # 11: daily statistics (central/intel/stats.py)
    STATS_SCHEMA,
    # 12: alarm receipts from the checkpoints: when a tablet showed an alert, when it was acknowledged there
    [
        """CREATE TABLE alert_receipts (alert_id TEXT NOT NULL, checkpoint TEXT NOT NULL, shown_at REAL,
            shown_by TEXT NOT NULL, acknowledged_at REAL, outcome TEXT, officer TEXT NOT NULL,
            received_at REAL NOT NULL, PRIMARY KEY (alert_id, checkpoint)) WITHOUT ROWID""",
    ],
    # 13: the log of list changes (central/record/watchlists.py): each applied change, covert lists too,
    # at its position, as a hub's index follows it; and the times the alerts' later news was stored at
    # (AlertStore.touched_since)
    [
        "CREATE TABLE list_changes (position INTEGER PRIMARY KEY, at REAL NOT NULL, body BLOB NOT NULL)",
        "CREATE INDEX alert_folds_raised ON alert_folds (raised_at)",
        "CREATE INDEX alert_outcomes_received ON alert_outcomes (received_at)",
        "CREATE INDEX alert_receipts_received ON alert_receipts (received_at)",
    ],
    # 14: which hub is to dispatch each alert not dispatched yet (as on PostgreSQL: AlertStore.claim_orphans)
    [
        "ALTER TABLE alerts ADD COLUMN dispatch_hub TEXT",
    ],
]
