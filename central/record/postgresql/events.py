"""The alert store on PostgreSQL: events from the edges, alerts, folding, outcomes, alarm receipts,
checkpoints, dead letters, escalations, quick-test results and the hits' retention (``AlertStore`` and
``KitResultStore``, as ``central.record.sqlite.store`` keeps them on hub.db). The methods that take
``tx`` run inside the store's transaction; ``PgStores`` gives the others a read connection.

**Alerts' positions in commit order.** An alert's ``pos`` is taken under one advisory lock that
PostgreSQL holds until the transaction ends (``insert_alert``), so the alert that took position N
commits before any other can take N + 1: a console catching up "after the last position" it saw
(``alerts_after``) never skips an alert whose transaction committed late. The lock is held from a
batch's first new alert to the commit of the writer's group (``PgStores``: the jobs after it in the group
run while it is held, and another hub's new alert waits that long); alerts are rare beside reads.

**A batch's reads in one statement.** ``insert_reads`` hands a run of reads and passages to the record's
``insert_many`` (one statement for the reads, one for the passages) and asks in one more which of them
edge hits name, so the ingest pipeline reconciles only those: a batch costs the same few round trips
whatever the number of its reads, not two per read.

**Folding across hubs.** A hit looks for its open alert under the alerts' lock (``fold``), held to the
commit, and the open alert is read ``FOR UPDATE``: two transactions folding hits of one entry at once take
turns, and the second sees the alert the first raised, instead of raising its own.

Every event is inserted idempotently by its identity (checkpoint, epoch, seq) as on SQLite: the same
content again is a resend (nothing new), other content under a taken identity is a dead letter. What
an edge sent as free text (an officer's note and name, a hit's explanation, a gap's reason) is kept as
bytes: PostgreSQL's ``text`` cannot hold a NUL. Ids that are joined and looked up are ``text``, with a
NUL as U+FFFD (:func:`key`); the alert's body keeps the exact id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg

from central.record.alerts import PendingHit
from central.record.days import digest, made_at
from central.record.escalation import ACTION, ACTOR, LOOKBACK_S, frame
from central.record.folding import foldable
from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.duties import hubs_alive
from central.record.postgresql.reads import PgReadStore
from central.record.stores import Outcome, StoredRun
from protocols import folding
from protocols.kits import KitResult, overall_call
from protocols.messages import (
    Alert,
    AlertOutcome,
    AlertReceipt,
    EdgeHit,
    Event,
    Gap,
    KitResultEvent,
    Passage,
    PlateRead,
    event_kind,
)

_encoder = msgspec.json.Encoder()
_alert_decoder = msgspec.json.Decoder(type=Alert)

#: The lock every new alert's position is taken under (any constant unique to Cordon's alerts).
ALERT_LOCK = 0x636F72646F70
#: The savepoint ``PgStores`` takes at the start of every write job (``dead_letter`` rolls back to it).
JOB_SAVEPOINT = "cordon_job"
#: At most this much of a dead letter's raw bytes is kept (its full size is recorded).
MAX_RAW_BYTES = 64 * 1024
#: What the hits' retention removes: (table, time column). The audit trail is never purged.
HIT_TABLES = (
    ("alerts", "raised_at"),
    ("alert_outcomes", "acknowledged_at"),
    ("edge_hits", "raised_at"),
    ("events", "received_at"),
    ("webhook_deliveries", "at"),
    ("gaps", "received_at"),
    ("dead_letters", "received_at"),
    ("alert_folds", "raised_at"),
    ("kit_results", "received_at"),
    ("alert_receipts", "received_at"),
)
#: The columns ``update_checkpoint`` may set (names checked before they reach the statement).
CHECKPOINT_FIELDS = frozenset({"online", "epoch", "status", "last_seen", "clock_offset_s", "feed_version"})
#: A receipt as the console gets it (docs/protocol.md, "Alarm receipts").
RECEIPT_COLUMNS = (
    "checkpoint",
    "shown_at",
    "shown_by",
    "acknowledged_at",
    "outcome",
    "officer",
    "received_at",
)


class DeadLetter(msgspec.Struct):
    """A dead letter as the hub's routes give it: the fields of ``runtime.deadletters.DeadLetter``, which
    only the SQLite stores may import."""

    id: int
    received_at: float
    source: str
    checkpoint: str | None
    reason: str
    raw_bytes: int
    raw_preview: str


def key(text: str) -> str:
    """An id as ``text`` can hold it (NUL and lone surrogates as U+FFFD)."""
    text = text.replace("\0", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def b(text: str | None) -> bytes | None:
    """Free text kept exactly, as bytes."""
    return None if text is None else text.encode("utf-8", "surrogatepass")


def s(raw: bytes | None) -> str | None:
    return None if raw is None else bytes(raw).decode("utf-8", "surrogatepass")


class PgEvents:
    """Events, alerts and quick-test results on PostgreSQL; the ``tx`` methods run inside the store's
    write transaction (a psycopg connection)."""

    def __init__(self, record: PgReadStore) -> None:
        self.record = record

    def insert_event(
        self,
        tx: psycopg.Connection,
        checkpoint: str,
        epoch: int,
        event: Event,
        edge_sent_at: float,
        received_at: float,
    ) -> Outcome:
        """Insert idempotently; a reused identity with other content comes back as a dead letter."""
        if isinstance(event, PlateRead | Passage):
            stored = self.record.insert(tx, checkpoint, epoch, event, edge_sent_at, received_at)
            return Outcome(
                inserted=stored.inserted, dead_letter=stored.conflict, seen_before=stored.seen_before
            )
        d = digest(event)
        taken = f"event {checkpoint}/{epoch}/{event.seq} was already stored with different content"
        cp = key(checkpoint)
        row = tx.execute(
            "SELECT digest FROM events WHERE checkpoint = %s AND epoch = %s AND seq = %s",
            (cp, epoch, event.seq),
        ).fetchone()
        if row is not None:
            return (
                Outcome(inserted=False) if bytes(row[0]) == d else Outcome(inserted=False, dead_letter=taken)
            )
        if self.record.identity_taken(tx, checkpoint, epoch, event.seq, near=made_at(event)):
            return Outcome(inserted=False, dead_letter=taken)
        # Another hub may be storing the same event this moment (a resend that reached it too): the insert
        # then waits for that hub's commit and does nothing, and the event is as stored there. A plain
        # insert failed on the unique key instead, and the batch became a dead letter.
        if not tx.execute(
            "INSERT INTO events (checkpoint, epoch, seq, kind, digest, received_at) VALUES (%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (checkpoint, epoch, seq) DO NOTHING",
            (cp, epoch, event.seq, event_kind(event), d, received_at),
        ).rowcount:
            row = tx.execute(
                "SELECT digest FROM events WHERE checkpoint = %s AND epoch = %s AND seq = %s",
                (cp, epoch, event.seq),
            ).fetchone()
            same = row is not None and bytes(row[0]) == d
            return Outcome(inserted=False) if same else Outcome(inserted=False, dead_letter=taken)
        if isinstance(event, EdgeHit):
            tx.execute(
                "INSERT INTO edge_hits (checkpoint, epoch, seq, read_seq, alert_id, entry_id, list_id, kind, score, "
                "explanation, feed_version, matcher_version, raised_at, thumbnail) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    cp,
                    epoch,
                    event.seq,
                    event.read_seq,
                    key(event.alert_id),
                    key(event.entry_id),
                    key(event.list_id),
                    key(event.kind),
                    event.score,
                    b(event.explanation),
                    event.feed_version,
                    b(event.matcher_version),
                    event.raised_at,
                    b(event.thumbnail),
                ),
            )
        elif isinstance(event, Gap):
            for lo, hi in event.ranges:
                tx.execute(
                    "INSERT INTO gaps (checkpoint, epoch, seq, lo, hi, count, reason, dropped_at, received_at) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        cp,
                        epoch,
                        event.seq,
                        lo,
                        hi,
                        hi - lo + 1,
                        b(event.reason),
                        event.dropped_at,
                        received_at,
                    ),
                )
            tx.execute(
                "INSERT INTO checkpoints (checkpoint, dropped_reads) VALUES (%s, %s) ON CONFLICT (checkpoint) "
                "DO UPDATE SET dropped_reads = checkpoints.dropped_reads + excluded.dropped_reads",
                (cp, event.count),
            )
        elif isinstance(event, AlertOutcome):
            tx.execute(
                "INSERT INTO alert_outcomes (checkpoint, epoch, seq, alert_id, outcome, note, officer, "
                "acknowledged_at, alert_raised_at, received_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    cp,
                    epoch,
                    event.seq,
                    key(event.alert_id),
                    event.outcome,
                    b(event.note),
                    b(event.officer),
                    event.acknowledged_at,
                    event.alert_raised_at,
                    received_at,
                ),
            )
        elif isinstance(event, KitResultEvent):
            r = event.result
            tx.execute(
                "INSERT INTO kit_results (checkpoint, epoch, seq, result_id, id_hash, id_last4, kit_model, result, "
                "officer, sampled_at, read_at, kit_expired, outside_read_window, person_hits, body, received_at) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    cp,
                    epoch,
                    event.seq,
                    b(r.result_id),
                    key(r.subject.id_hash),
                    b(r.subject.id_last4),
                    b(r.kit_model),
                    overall_call(r.panels),
                    b(event.checkpoint_officer),
                    r.sampled_at,
                    r.read_at,
                    r.kit_expired,
                    r.outside_read_window,
                    _encoder.encode(event.person_hits),
                    _encoder.encode(r),
                    received_at,
                ),
            )
        return Outcome(inserted=True)

    def insert_reads(
        self,
        tx: psycopg.Connection,
        checkpoint: str,
        epoch: int,
        events: Sequence[PlateRead | Passage],
        edge_sent_at: float,
        received_at: float,
    ) -> StoredRun:
        """A run of reads and passages by the record's ``insert_batch`` (one statement for the reads, one for
        the passages), each outcome as ``insert_event`` would give it, and the reads edge hits name (told
        by the same statement)."""
        stored, named = self.record.insert_batch(
            tx, [(checkpoint, epoch, e, edge_sent_at, received_at) for e in events]
        )
        return StoredRun(
            [Outcome(inserted=s.inserted, dead_letter=s.conflict, seen_before=s.seen_before) for s in stored],
            {events[i].seq for i in named},
        )

    @staticmethod
    def insert_alert(tx: psycopg.Connection, alert: Alert, hub: str = "") -> bool:
        """Store an alert once (its id decides), at the next position in commit order, ``hub`` to dispatch
        it; True when it is new."""
        if tx.execute("SELECT 1 FROM alerts WHERE alert_id = %s", (key(alert.alert_id),)).fetchone():
            return False
        tx.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_LOCK,))
        return (
            tx.execute(
                "INSERT INTO alerts (alert_id, checkpoint, epoch, seq, entry_id, list_id, action, priority, "
                "raised_at, body, dispatch_hub, pos) SELECT %s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s, "
                "coalesce(max(pos), 0) + 1 FROM alerts ON CONFLICT (alert_id) DO NOTHING",
                (
                    key(alert.alert_id),
                    key(alert.checkpoint),
                    alert.epoch,
                    alert.seq,
                    key(alert.hit.entry_id),
                    key(alert.hit.list_id),
                    str(alert.hit.action),
                    alert.hit.priority,
                    alert.raised_at,
                    _encoder.encode(alert),
                    hub or None,
                ),
            ).rowcount
            == 1
        )

    @staticmethod
    def kit_results(
        tx: psycopg.Connection,
        checkpoint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        result: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Quick-test results, newest first (the subject only as hash and last four)."""
        where, args = [], []
        for cond, value in (
            ("checkpoint = %s", None if checkpoint is None else key(checkpoint)),
            ("sampled_at >= %s", since),
            ("sampled_at < %s", until),
            ("result = %s", result),
        ):
            if value is not None:
                where.append(cond)
                args.append(value)
        sql = (
            "SELECT checkpoint, epoch, seq, officer, person_hits, body, received_at FROM kit_results"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY sampled_at DESC LIMIT %s"
        )
        out = []
        for cp, epoch, seq, officer, hits, body, received in tx.execute(sql, (*args, limit)):  # type: ignore[arg-type]
            record = msgspec.json.decode(bytes(body))
            record.update(
                checkpoint=cp,
                epoch=epoch,
                seq=seq,
                recorded_by=s(officer),
                received_at=received,
                person_hits=msgspec.json.decode(bytes(hits)),
                result=overall_call(msgspec.json.decode(bytes(body), type=KitResult).panels),
            )
            out.append(record)
        return out

    # -- inside a write transaction ------------------------------------------------------------------
    @staticmethod
    def add_thumbnail(tx: psycopg.Connection, alert_id: str, thumbnail: str) -> Alert | None:
        """Put an edge hit's thumbnail on a stored alert that has none; the alert as it is now, or None when
        there is no such alert or it had a picture already."""
        row = tx.execute(
            "SELECT body FROM alerts WHERE alert_id = %s FOR UPDATE", (key(alert_id),)
        ).fetchone()
        if row is None:
            return None
        alert = _alert_decoder.decode(bytes(row[0]))
        if alert.thumbnail is not None:
            return None
        alert = msgspec.structs.replace(alert, thumbnail=thumbnail)
        tx.execute("UPDATE alerts SET body = %s WHERE alert_id = %s", (_encoder.encode(alert), key(alert_id)))
        return alert

    @staticmethod
    def update_checkpoint(tx: psycopg.Connection, checkpoint: str, **fields: Any) -> None:
        unknown = set(fields) - CHECKPOINT_FIELDS
        if unknown:
            raise ValueError(f"no checkpoint field {', '.join(sorted(unknown))}")
        if "status" in fields and isinstance(fields["status"], str):
            fields["status"] = b(fields["status"])
        if "online" in fields:
            fields["online"] = bool(fields["online"])
        names = list(fields)
        tx.execute(
            f"INSERT INTO checkpoints (checkpoint{''.join(', ' + n for n in names)}) "
            f"VALUES (%s{', %s' * len(names)}) ON CONFLICT (checkpoint) DO UPDATE SET "
            + ", ".join(f"{n} = excluded.{n}" for n in names)
            if names
            else "INSERT INTO checkpoints (checkpoint) VALUES (%s) ON CONFLICT (checkpoint) DO NOTHING",
            (key(checkpoint), *fields.values()),
        )

    @staticmethod
    def checkpoint_seen(tx: psycopg.Connection, checkpoint: str, last_seen: float, epoch: int) -> None:
        """Every hub's every fresh batch says when its checkpoint was last seen, and a group commit holds
        the rows it wrote, and the alerts' lock, to its end: two hubs writing two checkpoints' rows in
        opposite orders, or one holding the alerts' lock and wanting a row the other holds while it waits
        for the lock, deadlocked (PostgreSQL aborts one group, whose edges send again). So a row another
        transaction is writing is skipped: that one is saying the same thing at the same moment. Only the
        row's first insert can wait, once in a checkpoint's life."""
        k = key(checkpoint)
        if tx.execute(
            "UPDATE checkpoints SET last_seen = %s, epoch = %s WHERE checkpoint = "
            "(SELECT checkpoint FROM checkpoints WHERE checkpoint = %s FOR UPDATE SKIP LOCKED)",
            (last_seen, epoch, k),
        ).rowcount:
            return
        if tx.execute("SELECT 1 FROM checkpoints WHERE checkpoint = %s", (k,)).fetchone() is None:
            tx.execute(
                "INSERT INTO checkpoints (checkpoint, last_seen, epoch) VALUES (%s, %s, %s) "
                "ON CONFLICT (checkpoint) DO NOTHING",
                (k, last_seen, epoch),
            )

    @staticmethod
    def folded_or_raised(tx: psycopg.Connection, alert_id: str) -> bool:
        """This alert id was already raised or folded (a replay)."""
        k = key(alert_id)
        return (
            tx.execute(
                "SELECT 1 FROM alerts WHERE alert_id = %s UNION ALL SELECT 1 FROM alert_folds WHERE alert_id = %s",
                (k, k),
            ).fetchone()
            is not None
        )

    @staticmethod
    def fold(tx: psycopg.Connection, alert: Alert, window_s: float) -> Alert | None:
        """Fold ``alert`` into the open alert of its entry and list within the window, if there is one, and
        return that alert as updated; None: raise ``alert`` as a new one (the rule: ``protocols.folding``)."""
        if window_s <= 0 or not foldable(alert) or PgEvents.folded_or_raised(tx, alert.alert_id):
            return None
        # The alerts' lock first, held to the commit as ``insert_alert`` holds it: a hub that looks for the
        # open alert after another hub's transaction raised it waits for that commit, then sees it (READ
        # COMMITTED: each statement sees what committed before it), so two hubs folding hits of one
        # vehicle at once raise one alert. (Before migration 16 the day's ``record_days`` row every batch of
        # reads updated also serialized them; now each hub counts in rows of its own, and this never rested
        # on it: an edge hit whose read came earlier counts nothing.)
        tx.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_LOCK,))
        rows = tx.execute(
            "SELECT a.alert_id, a.body FROM alerts a WHERE a.list_id = %s AND a.entry_id = %s AND a.raised_at >= %s "
            "AND NOT EXISTS (SELECT 1 FROM alert_outcomes o WHERE o.alert_id = a.alert_id OR o.alert_id IN "
            "(SELECT f.alert_id FROM alert_folds f WHERE f.into_id = a.alert_id)) "
            "ORDER BY a.raised_at DESC LIMIT 20 FOR UPDATE OF a",
            (key(alert.hit.list_id), key(alert.hit.entry_id), alert.raised_at - window_s - 86400.0),
        ).fetchall()
        for stored_id, body in rows:
            open_alert = _alert_decoder.decode(bytes(body))
            if not folding.folds_into(open_alert, alert, window_s):
                continue
            tx.execute(
                "INSERT INTO alert_folds (alert_id, into_id, checkpoint, captured_at, raised_at) "
                "VALUES (%s,%s,%s,%s,%s)",
                (key(alert.alert_id), stored_id, key(alert.checkpoint), alert.captured_at, alert.raised_at),
            )
            updated = folding.fold_into(open_alert, alert)
            tx.execute(
                "UPDATE alerts SET body = %s WHERE alert_id = %s", (_encoder.encode(updated), stored_id)
            )
            return updated
        return None

    @staticmethod
    def folded_into(tx: psycopg.Connection, alert_id: str) -> str | None:
        """The open alert a hit's alert was folded into (its exact id), None when it was not folded."""
        row = tx.execute(
            "SELECT a.body FROM alert_folds f JOIN alerts a ON a.alert_id = f.into_id WHERE f.alert_id = %s",
            (key(alert_id),),
        ).fetchone()
        if row is not None:
            return _alert_decoder.decode(bytes(row[0])).alert_id
        row = tx.execute("SELECT into_id FROM alert_folds WHERE alert_id = %s", (key(alert_id),)).fetchone()
        return row[0] if row else None

    @staticmethod
    def hit_thumbnail(
        tx: psycopg.Connection, checkpoint: str, epoch: int, read_seq: int, alert_id: str
    ) -> str | None:
        """The picture an edge hit stored earlier carried for this alert of this read."""
        row = tx.execute(
            "SELECT thumbnail FROM edge_hits WHERE checkpoint = %s AND epoch = %s AND read_seq = %s "
            "AND alert_id = %s AND thumbnail IS NOT NULL LIMIT 1",
            (key(checkpoint), epoch, read_seq, key(alert_id)),
        ).fetchone()
        return s(row[0]) if row else None

    @staticmethod
    def unalerted_edge_hits(
        tx: psycopg.Connection, checkpoint: str, epoch: int, read_seq: int
    ) -> list[PendingHit]:
        """The edge hits on this read that have no alert yet and were not folded."""
        rows = tx.execute(
            "SELECT h.alert_id, h.entry_id, h.list_id, h.kind, h.score, h.explanation, h.feed_version, "
            "h.matcher_version FROM edge_hits h LEFT JOIN alerts a ON a.alert_id = h.alert_id "
            "WHERE h.checkpoint = %s AND h.epoch = %s AND h.read_seq = %s AND a.alert_id IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM alert_folds f WHERE f.alert_id = h.alert_id) ORDER BY h.seq",
            (key(checkpoint), epoch, read_seq),
        ).fetchall()
        return [PendingHit(a, e, li, k, sc, s(ex), fv, s(mv)) for a, e, li, k, sc, ex, fv, mv in rows]  # type: ignore[arg-type]

    @staticmethod
    def insert_receipt(tx: psycopg.Connection, receipt: AlertReceipt, received_at: float) -> dict[str, Any]:
        """Keep an alarm receipt (the earliest showing, the latest acknowledgement per alert and checkpoint)
        and return it as the console's frame: under the alert the console shows (the open alert a folded
        hit went into), with that alert's list and action when the hub has it."""
        k, cp = key(receipt.alert_id), key(receipt.checkpoint)
        row = tx.execute(
            """INSERT INTO alert_receipts AS r (alert_id, checkpoint, shown_at, shown_by, acknowledged_at, outcome,
                   officer, received_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)
               ON CONFLICT (alert_id, checkpoint) DO UPDATE SET
                   shown_at = CASE WHEN r.shown_at IS NULL THEN excluded.shown_at
                       WHEN excluded.shown_at IS NULL THEN r.shown_at
                       ELSE least(r.shown_at, excluded.shown_at) END,
                   shown_by = CASE WHEN r.shown_by = ''::bytea THEN excluded.shown_by ELSE r.shown_by END,
                   outcome = CASE WHEN excluded.acknowledged_at >= coalesce(r.acknowledged_at, 0)
                       THEN excluded.outcome ELSE r.outcome END,
                   officer = CASE WHEN excluded.acknowledged_at >= coalesce(r.acknowledged_at, 0)
                       THEN excluded.officer ELSE r.officer END,
                   acknowledged_at = greatest(r.acknowledged_at, excluded.acknowledged_at),
                   received_at = excluded.received_at
               RETURNING checkpoint, shown_at, shown_by, acknowledged_at, outcome, officer, received_at""",
            (
                k,
                cp,
                receipt.shown_at,
                b(receipt.shown_by),
                receipt.acknowledged_at,
                receipt.outcome,
                b(receipt.officer),
                received_at,
            ),
        ).fetchone()
        assert row is not None
        got: dict[str, Any] = dict(zip(RECEIPT_COLUMNS, row, strict=True))
        got["checkpoint"] = receipt.checkpoint
        got["shown_by"], got["officer"] = s(got["shown_by"]), s(got["officer"])
        into = PgEvents.folded_into(tx, receipt.alert_id)
        got["alert_id"] = into if into else receipt.alert_id
        if into:
            got["folded_id"] = receipt.alert_id
        known = tx.execute(
            "SELECT list_id, action FROM alerts WHERE alert_id = %s", (key(got["alert_id"]),)
        ).fetchone()
        got["list_id"], got["action"] = known if known else (None, None)
        return got

    @staticmethod
    def dead_letter(
        tx: psycopg.Connection,
        source: str,
        reason: str,
        raw: bytes,
        checkpoint: str | None = None,
        received_at: float | None = None,
    ) -> int:
        """Keep what could not be taken, with the reason and the raw bytes (bounded); its id.

        After a failed statement (the transaction is aborted, and nothing of the job can commit) the job is
        first rolled back to its start, so the dead letter is what the job leaves."""
        if tx.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            tx.execute(f"ROLLBACK TO SAVEPOINT {JOB_SAVEPOINT}")
        row = tx.execute(
            "INSERT INTO dead_letters (received_at, source, checkpoint, reason, raw, raw_bytes) "
            "VALUES (%s,%s,%s,%s,%s,%s) RETURNING id",
            (
                received_at or time.time(),
                b(source[:200]),
                b(checkpoint),
                b(reason[:2000]),
                bytes(raw[:MAX_RAW_BYTES]),
                len(raw),
            ),
        ).fetchone()
        return int(row[0])  # type: ignore[index]

    @staticmethod
    def escalate_due(
        tx: psycopg.Connection, after_s: float, now: float | None = None
    ) -> list[dict[str, Any]]:
        """Audit every intercept alert unanswered for ``after_s`` and not yet escalated (once each: the audit
        record is written in this transaction); the escalation frames."""
        now = time.time() if now is None else now
        rows = tx.execute(
            "SELECT body FROM alerts a WHERE action = 'intercept' AND raised_at <= %s AND raised_at >= %s "
            "AND NOT EXISTS (SELECT 1 FROM alert_outcomes o WHERE o.alert_id = a.alert_id OR o.alert_id IN "
            "(SELECT f.alert_id FROM alert_folds f WHERE f.into_id = a.alert_id)) "
            "AND NOT EXISTS (SELECT 1 FROM audit u WHERE u.actor = %s AND u.action = %s "
            "AND u.target = convert_to(a.alert_id, 'UTF8')) ORDER BY raised_at, alert_id",
            (now - after_s, now - after_s - LOOKBACK_S, b(ACTOR), b(ACTION)),
        ).fetchall()
        escalated = []
        for (body,) in rows:
            alert = _alert_decoder.decode(bytes(body))
            found = frame(alert, now, after_s)
            PgAuditStore.append(
                tx,
                ACTOR,
                "system",
                ACTION,
                target=key(alert.alert_id),
                reason=f"no outcome {round(after_s)} s after the alert",
                detail={k: found[k] for k in ("checkpoint", "plate_read", "list_id", "raised_at")},
                at=now,
            )
            escalated.append(found)
        return escalated

    @staticmethod
    def escalated_among(tx: psycopg.Connection, alert_ids: list[str], after_s: float) -> list[dict[str, Any]]:
        """The escalations already recorded for these alerts, as whole frames."""
        return [
            frame(_alert_decoder.decode(bytes(body)), at, after_s)
            for at, body in tx.execute(
                "SELECT u.at, a.body FROM audit u JOIN alerts a ON u.target = convert_to(a.alert_id, 'UTF8') "
                "WHERE u.actor = %s AND u.action = %s AND a.alert_id = ANY(%s) ORDER BY u.id",
                (b(ACTOR), b(ACTION), [key(i) for i in alert_ids]),
            )
        ]

    @staticmethod
    def alerts_naming(tx: psycopg.Connection, checkpoint: str, epoch: int, seq: int) -> list[Alert]:
        """Alerts of this read, and clone alerts that name it as the other read ("rule:clone:CP/epoch/seq")."""
        rows = tx.execute(
            "SELECT body FROM alerts WHERE (checkpoint = %s AND epoch = %s AND seq = %s) OR entry_id = %s "
            "ORDER BY pos",
            (key(checkpoint), epoch, seq, key(f"rule:clone:{checkpoint}/{epoch}/{seq}")),
        ).fetchall()
        return [_alert_decoder.decode(bytes(body)) for (body,) in rows]

    @staticmethod
    def mark_dispatched(tx: psycopg.Connection, alert_ids: list[str], now: float) -> None:
        tx.execute(
            "UPDATE alerts SET dispatched_at = %s WHERE alert_id = ANY(%s) AND dispatched_at IS NULL",
            (now, [key(i) for i in alert_ids]),
        )

    @staticmethod
    def purge_hits_before(tx: psycopg.Connection, cutoff: float) -> dict[str, int]:
        """Delete alerts, outcomes, edge hits, gap reports, dead letters and quick-test results older than
        ``cutoff`` (unix s)."""
        return {
            table: tx.execute(f"DELETE FROM {table} WHERE {column} < %s", (cutoff,)).rowcount  # type: ignore[arg-type]
            for table, column in HIT_TABLES
        }

    @staticmethod
    def claim_orphans(tx: psycopg.Connection, hub: str, older_than: float, limit: int) -> list[Alert]:
        """Take over the alerts raised before ``older_than`` and still not dispatched whose dispatching hub
        is gone (its life lock free: ``central.record.postgresql.duties``), oldest first: they become
        ``hub``'s to dispatch. Rows another job holds (a fold, a marking) are skipped, not waited for."""
        rows = tx.execute(
            "SELECT alert_id, dispatch_hub FROM alerts WHERE dispatched_at IS NULL AND raised_at < %s "
            "AND dispatch_hub IS DISTINCT FROM %s ORDER BY pos LIMIT %s FOR UPDATE SKIP LOCKED",
            (older_than, hub, limit),
        ).fetchall()
        if not rows:
            return []
        alive = hubs_alive(tx, {owner for _, owner in rows if owner is not None})
        orphans = [alert_id for alert_id, owner in rows if owner not in alive]
        if not orphans:
            return []
        return [
            _alert_decoder.decode(bytes(body))
            for (body,) in tx.execute(
                "UPDATE alerts SET dispatch_hub = %s WHERE alert_id = ANY(%s) RETURNING body",
                (hub, orphans),
            )
        ]

    # -- reads ---------------------------------------------------------------------------------------
    @staticmethod
    def undispatched_alerts(tx: psycopg.Connection, hub: str = "") -> list[Alert]:
        """The alerts not dispatched yet that are ``hub``'s to dispatch (raised by it, or taken over), or
        nobody's (raised before hubs were named)."""
        return [
            _alert_decoder.decode(bytes(body))
            for (body,) in tx.execute(
                "SELECT body FROM alerts WHERE dispatched_at IS NULL "
                "AND (dispatch_hub IS NULL OR dispatch_hub = %s) ORDER BY raised_at, pos",
                (hub,),
            )
        ]

    @staticmethod
    def recent_alerts(tx: psycopg.Connection, limit: int = 100, include_covert: bool = True) -> list[Alert]:
        where = "" if include_covert else " WHERE action <> 'covert'"
        return [
            _alert_decoder.decode(bytes(body))
            for (body,) in tx.execute(
                f"SELECT body FROM alerts{where} ORDER BY raised_at DESC, pos DESC LIMIT %s",  # type: ignore[arg-type]
                (limit,),
            )
        ]

    @staticmethod
    def alerts_after(tx: psycopg.Connection, position: int, limit: int = 500) -> list[tuple[int, Alert]]:
        """Alerts after ``position`` in commit order, with their positions (a console catching up)."""
        return [
            (pos, _alert_decoder.decode(bytes(body)))
            for pos, body in tx.execute(
                "SELECT pos, body FROM alerts WHERE pos > %s ORDER BY pos LIMIT %s", (position, limit)
            )
        ]

    @staticmethod
    def touched_since(tx: psycopg.Connection, since: float, limit: int = 500) -> list[tuple[float, Alert]]:
        """The alerts with news stored at ``since`` or later (folds, outcomes, receipts, escalations), each
        with the time of its latest, oldest first."""
        return [
            (at, _alert_decoder.decode(bytes(body)))
            for at, body in tx.execute(
                "SELECT t.at, a.body FROM (SELECT id, max(at) AS at FROM ("
                "SELECT raised_at AS at, into_id AS id FROM alert_folds WHERE raised_at >= %(s)s "
                "UNION ALL SELECT o.received_at, coalesce(f.into_id, o.alert_id) FROM alert_outcomes o "
                "LEFT JOIN alert_folds f ON f.alert_id = o.alert_id WHERE o.received_at >= %(s)s "
                "UNION ALL SELECT r.received_at, coalesce(f.into_id, r.alert_id) FROM alert_receipts r "
                "LEFT JOIN alert_folds f ON f.alert_id = r.alert_id WHERE r.received_at >= %(s)s "
                "UNION ALL SELECT at, convert_from(target, 'UTF8') FROM audit "
                "WHERE actor = %(actor)s AND at >= %(s)s AND action = %(action)s"
                ") n GROUP BY id) t JOIN alerts a ON a.alert_id = t.id ORDER BY t.at LIMIT %(limit)s",
                {"s": since, "actor": b(ACTOR), "action": b(ACTION), "limit": limit},
            )
        ]

    @staticmethod
    def alert_position(tx: psycopg.Connection) -> int:
        """The newest alert's position (0: none yet)."""
        row = tx.execute("SELECT coalesce(max(pos), 0) FROM alerts").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def outcomes(tx: psycopg.Connection, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each alert's outcome history, oldest first (with the outcomes of hits folded into it)."""
        cols = ("alert_id", "checkpoint", "outcome", "note", "officer", "acknowledged_at", "received_at")
        ids = [key(i) for i in alert_ids]
        exact = {key(i): i for i in alert_ids}
        found: dict[str, list[dict[str, Any]]] = {}
        for row in tx.execute(
            "SELECT coalesce(f.into_id, o.alert_id), o.checkpoint, o.outcome, o.note, o.officer, "
            "o.acknowledged_at, o.received_at FROM alert_outcomes o LEFT JOIN alert_folds f "
            "ON f.alert_id = o.alert_id WHERE o.alert_id = ANY(%s) "
            "OR o.alert_id IN (SELECT alert_id FROM alert_folds WHERE into_id = ANY(%s)) "
            "ORDER BY o.acknowledged_at, o.n",
            (ids, ids),
        ):
            got = dict(zip(cols, row, strict=True))
            got["alert_id"] = exact.get(got["alert_id"], got["alert_id"])
            got["note"], got["officer"] = s(got["note"]), s(got["officer"])
            found.setdefault(got["alert_id"], []).append(got)
        return found

    @staticmethod
    def receipts(tx: psycopg.Connection, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each alert's receipts from the checkpoints (with those of hits folded into it), by checkpoint."""
        ids = [key(i) for i in alert_ids]
        exact = {key(i): i for i in alert_ids}
        found: dict[str, list[dict[str, Any]]] = {}
        for row in tx.execute(
            "SELECT coalesce(f.into_id, r.alert_id), r.checkpoint, r.shown_at, r.shown_by, r.acknowledged_at, "
            "r.outcome, r.officer, r.received_at FROM alert_receipts r LEFT JOIN alert_folds f "
            "ON f.alert_id = r.alert_id WHERE r.alert_id = ANY(%s) "
            "OR r.alert_id IN (SELECT alert_id FROM alert_folds WHERE into_id = ANY(%s)) "
            'ORDER BY r.checkpoint COLLATE "C", r.alert_id',
            (ids, ids),
        ):
            alert_id = exact.get(row[0], row[0])
            got = {"alert_id": alert_id, **dict(zip(RECEIPT_COLUMNS, row[1:], strict=True))}
            got["shown_by"], got["officer"] = s(got["shown_by"]), s(got["officer"])
            found.setdefault(alert_id, []).append(got)
        return found

    @staticmethod
    def gaps(tx: psycopg.Connection, checkpoint: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Reads the edges reported dropped, newest first."""
        where, args = ("", ()) if checkpoint is None else (" WHERE checkpoint = %s", (key(checkpoint),))
        cols = ("checkpoint", "epoch", "lo", "hi", "count", "reason", "dropped_at", "received_at")
        out = []
        for row in tx.execute(
            f"SELECT {', '.join(cols)} FROM gaps{where} ORDER BY received_at DESC, lo DESC LIMIT %s",  # type: ignore[arg-type]
            (*args, limit),
        ):
            got = dict(zip(cols, row, strict=True))
            got["reason"] = s(got["reason"])
            out.append(got)
        return out

    @staticmethod
    def dead_letters(
        tx: psycopg.Connection, limit: int = 100, before_id: int | None = None
    ) -> list[DeadLetter]:
        """Newest first."""
        where, args = ("", ()) if before_id is None else (" WHERE id < %s", (before_id,))
        return [
            DeadLetter(i, t, s(src) or "", s(cp), s(r) or "", n, bytes(raw[:2000]).decode("utf-8", "replace"))
            for i, t, src, cp, r, n, raw in tx.execute(
                "SELECT id, received_at, source, checkpoint, reason, raw_bytes, substring(raw from 1 for 2000) "
                f"FROM dead_letters{where} ORDER BY id DESC LIMIT %s",  # type: ignore[arg-type]
                (*args, limit),
            )
        ]

    @staticmethod
    def checkpoints(tx: psycopg.Connection) -> list[dict[str, Any]]:
        return [
            {
                "checkpoint": c,
                "online": bool(o),
                "epoch": e,
                "status": msgspec.json.decode(bytes(st)) if st else None,
                "last_seen": ls,
                "clock_offset_s": off,
                "dropped_reads": dropped,
            }
            for c, o, e, st, ls, off, dropped in tx.execute(
                "SELECT checkpoint, online, epoch, status, last_seen, clock_offset_s, dropped_reads FROM checkpoints "
                'ORDER BY checkpoint COLLATE "C"'
            )
        ]

    @staticmethod
    def counts(tx: psycopg.Connection) -> tuple[int, int]:
        """Alerts and dead letters held."""
        row = tx.execute(
            "SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM dead_letters)"
        ).fetchone()
        return int(row[0]), int(row[1])  # type: ignore[index]
