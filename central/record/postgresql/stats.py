"""The command center's numbers on PostgreSQL: per-day counts kept at ingest (each hub in its own row,
``daily_slot_counts``, summed with what ``daily_counts`` holds: migration 16), camera uptime samples
(``camera_samples``), and the summaries made from them and from alerts, outcomes and quick tests by
``central.record.stats`` (the same code as on SQLite)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import psycopg

from central.record.days import day_bounds, day_of
from central.record.postgresql.events import key
from central.record.postgresql.schema import DAILY_COUNTS
from central.record.stats import ALL_CAMERAS, GROUPS, Hidden, alerts_with_outcome, misread_rates, tally
from protocols.messages import Alert, CheckpointStatus


def _alerts(
    tx: psycopg.Connection, since: float, until: float, hidden: Hidden
) -> list[tuple[Alert, tuple | None]]:
    """Alerts raised in [since, until) with their first outcome (the earliest acknowledged; of two at once, the first stored)."""
    rows = tx.execute(
        "SELECT a.body, o.outcome, o.acknowledged_at, o.alert_raised_at FROM alerts a "
        "LEFT JOIN LATERAL (SELECT outcome, acknowledged_at, alert_raised_at FROM alert_outcomes "
        "WHERE alert_id = a.alert_id ORDER BY acknowledged_at, n LIMIT 1) o "
        "ON true WHERE a.raised_at >= %s AND a.raised_at < %s",
        (since, until),
    ).fetchall()
    return alerts_with_outcome([(bytes(body), *rest) for body, *rest in rows], hidden)


class PgStatsStore:
    """``StatsStore`` on PostgreSQL; every method takes the store's transaction. ``slot``: this hub's row of
    each day's and checkpoint's counts (``schema.hub_slot``)."""

    def __init__(self, slot: int = 0) -> None:
        self.slot = slot

    def add_daily_counts(self, tx: psycopg.Connection, counts: dict[tuple[str, str], list[int]]) -> None:
        """Add one batch's (day, checkpoint) -> [reads, passages, no-plate reads] to this hub's rows, in one
        statement (a batch has one row or a few). Another hub taking the same checkpoint's batches (a shared
        subscription) adds to its own rows, so neither waits for the other's commit."""
        rows: dict[tuple[dt.date, str], list[int]] = {}
        for (day, cp), c in sorted(counts.items()):  # two checkpoints whose keys meet count as one row
            row = rows.setdefault((dt.date.fromisoformat(day), key(cp)), [0, 0, 0])
            for i, n in enumerate(c):
                row[i] += n
        if not rows:
            return
        tx.execute(
            "INSERT INTO daily_slot_counts AS c (day, checkpoint, slot, reads, passages, no_plate) "
            "SELECT d, cp, %s::integer, r, p, n FROM unnest(%s::date[], %s::text[], %s::int8[], %s::int8[], %s::int8[]) "
            "AS t(d, cp, r, p, n) "
            "ON CONFLICT (day, checkpoint, slot) DO UPDATE SET reads = c.reads + excluded.reads, "
            "passages = c.passages + excluded.passages, no_plate = c.no_plate + excluded.no_plate",
            (
                self.slot,
                [d for d, _ in rows],
                [cp for _, cp in rows],
                *([r[i] for r in rows.values()] for i in range(3)),
            ),
        )

    @staticmethod
    def sample_status(tx: psycopg.Connection, status: CheckpointStatus, at: float, tz: dt.timezone) -> None:
        """One uptime sample from a live status: the checkpoint's cameras as a whole under ``*`` and each
        stale camera by name."""
        day = day_of(at, tz)
        stale = sorted({key(c) for c in status.stale_cameras or []})
        cp = key(status.checkpoint)
        rows = [(day, cp, ALL_CAMERAS, 1 if stale else 0)] + [(day, cp, c, 1) for c in stale]
        with tx.cursor() as cur:
            cur.executemany(
                "INSERT INTO camera_samples (day, checkpoint, camera, samples, stale) VALUES (%s,%s,%s,1,%s) "
                "ON CONFLICT (day, checkpoint, camera) DO UPDATE SET samples = camera_samples.samples + 1, "
                "stale = camera_samples.stale + excluded.stale",
                rows,
            )

    @staticmethod
    def summary(
        tx: psycopg.Connection,
        group: str,
        first: dt.date,
        last: dt.date,
        tz: dt.timezone,
        ring: Iterable[dict[str, Any]] = (),
        hidden: Hidden = None,
    ) -> dict[str, Any]:
        """Every number over the days [first, last], one row per group value (without the ``hidden`` alerts)."""
        if group not in GROUPS:
            raise ValueError(f"group must be one of {', '.join(GROUPS)}")
        since, until = day_bounds(first, tz)[0], day_bounds(last, tz)[1]
        return tally(
            group,
            first,
            last,
            tz,
            ring,
            daily=[
                (day.isoformat(), cp, reads, passages, no_plate)
                for day, cp, reads, passages, no_plate in tx.execute(
                    "SELECT day, checkpoint, sum(reads), sum(passages), sum(no_plate) "
                    f"FROM {DAILY_COUNTS} c WHERE day BETWEEN %s AND %s GROUP BY day, checkpoint",
                    (first, last),
                )
            ],
            alerts=_alerts(tx, since, until, hidden),
            kits=[
                (cp, sampled_at, bytes(body))
                for cp, sampled_at, body in tx.execute(
                    "SELECT checkpoint, sampled_at, body FROM kit_results WHERE sampled_at >= %s AND sampled_at < %s",
                    (since, until),
                )
            ],
            samples=[
                (day.isoformat(), cp, samples, stale)
                for day, cp, samples, stale in tx.execute(
                    "SELECT day, checkpoint, samples, stale FROM camera_samples "
                    "WHERE camera = %s AND day BETWEEN %s AND %s",
                    (ALL_CAMERAS, first, last),
                )
            ],
            stale=[
                (cp, cam, None if s is None else int(s), int(st))
                for cp, cam, s, st in tx.execute(
                    "SELECT c.checkpoint, c.camera, (SELECT sum(a.samples) FROM camera_samples a "
                    "WHERE a.checkpoint = c.checkpoint AND a.camera = %s AND a.day BETWEEN %s AND %s), "
                    "sum(c.stale) FROM camera_samples c WHERE c.camera <> %s AND c.day BETWEEN %s AND %s "
                    "GROUP BY c.checkpoint, c.camera ORDER BY c.checkpoint, c.camera",
                    (ALL_CAMERAS, first, last, ALL_CAMERAS, first, last),
                )
            ],
        )

    @staticmethod
    def misreads(
        tx: psycopg.Connection, first: dt.date, last: dt.date, tz: dt.timezone, hidden: Hidden = None
    ) -> dict[str, Any]:
        """Misread outcomes over alerts with an outcome, per match kind and per list."""
        since, until = day_bounds(first, tz)[0], day_bounds(last, tz)[1]
        return misread_rates(first, last, _alerts(tx, since, until, hidden))
