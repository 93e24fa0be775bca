"""The command center's numbers on hub.db: per-day counts kept at ingest (``daily_counts``), camera uptime
samples (``camera_samples``), and the summaries read from them and from alerts, outcomes and quick tests
(see ``central.intel.stats`` for what they mean)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from central.record.days import day_bounds, day_of
from central.record.stats import ALL_CAMERAS, GROUPS, Hidden, alerts_with_outcome, misread_rates, tally
from protocols.messages import Alert, CheckpointStatus


def add_daily_counts(db: sqlite_utils.Database, counts: dict[tuple[str, str], list[int]]) -> None:
    """Inside a writer job: add one batch's (day, checkpoint) -> [reads, passages, no-plate reads]."""
    db.conn.executemany(
        """INSERT INTO daily_counts (day, checkpoint, reads, passages, no_plate) VALUES (?,?,?,?,?)
        ON CONFLICT (day, checkpoint) DO UPDATE SET reads=reads+excluded.reads,
        passages=passages+excluded.passages, no_plate=no_plate+excluded.no_plate""",
        [(day, cp, *c) for (day, cp), c in counts.items()],
    )


def sample_status(db: sqlite_utils.Database, status: CheckpointStatus, at: float, tz: dt.timezone) -> None:
    """One uptime sample from a live status: the checkpoint's cameras as a whole under ``*`` (the status
    does not list every camera) and each stale camera by name."""
    day = day_of(at, tz).isoformat()
    stale = sorted(set(status.stale_cameras or []))
    rows = [(day, status.checkpoint, ALL_CAMERAS, 1 if stale else 0)] + [
        (day, status.checkpoint, c, 1) for c in stale
    ]
    db.conn.executemany(
        """INSERT INTO camera_samples (day, checkpoint, camera, samples, stale) VALUES (?,?,?,1,?)
        ON CONFLICT (day, checkpoint, camera) DO UPDATE SET samples=samples+1, stale=stale+excluded.stale""",
        rows,
    )


def _alerts(
    db: sqlite_utils.Database, since: float, until: float, hidden: Hidden = None
) -> list[tuple[Alert, tuple | None]]:
    """Alerts raised in [since, until) with their first outcome (outcome, seconds to acknowledge)."""
    rows = db.conn.execute(
        """SELECT a.body, o.outcome, o.acknowledged_at, o.alert_raised_at FROM alerts a
        LEFT JOIN alert_outcomes o ON o.rowid = (SELECT rowid FROM alert_outcomes WHERE alert_id = a.alert_id
                                                 ORDER BY acknowledged_at, rowid LIMIT 1)
        WHERE a.raised_at >= ? AND a.raised_at < ?""",
        (since, until),
    ).fetchall()
    return alerts_with_outcome(rows, hidden)


def summary(
    db: sqlite_utils.Database,
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
    lo, hi = first.isoformat(), last.isoformat()
    return tally(
        group,
        first,
        last,
        tz,
        ring,
        daily=db.conn.execute(
            "SELECT day, checkpoint, reads, passages, no_plate FROM daily_counts WHERE day BETWEEN ? AND ?",
            (lo, hi),
        ).fetchall(),
        alerts=_alerts(db, since, until, hidden),
        kits=db.conn.execute(
            "SELECT checkpoint, sampled_at, body FROM kit_results WHERE sampled_at >= ? AND sampled_at < ?",
            (since, until),
        ).fetchall(),
        samples=db.conn.execute(
            "SELECT day, checkpoint, samples, stale FROM camera_samples WHERE camera = ? AND day BETWEEN ? AND ?",
            (ALL_CAMERAS, lo, hi),
        ).fetchall(),
        stale=db.conn.execute(
            """SELECT c.checkpoint, c.camera, (SELECT SUM(a.samples) FROM camera_samples a
                         WHERE a.checkpoint = c.checkpoint AND a.camera = ? AND a.day BETWEEN ? AND ?), SUM(c.stale)
                         FROM camera_samples c WHERE c.camera != ? AND c.day BETWEEN ? AND ?
                         GROUP BY c.checkpoint, c.camera""",
            (ALL_CAMERAS, lo, hi, ALL_CAMERAS, lo, hi),
        ).fetchall(),
    )


def misreads(
    db: sqlite_utils.Database, first: dt.date, last: dt.date, tz: dt.timezone, hidden: Hidden = None
) -> dict[str, Any]:
    """Misread outcomes over alerts with an outcome, per match kind and per list (``few`` when fewer
    than :data:`FEW_OUTCOMES` outcomes stand behind a rate)."""
    since, until = day_bounds(first, tz)[0], day_bounds(last, tz)[1]
    return misread_rates(first, last, _alerts(db, since, until, hidden))


class SqliteStatsStore:
    """``StatsStore`` on hub.db: the functions above, as the store's ``stats``."""

    add_daily_counts = staticmethod(add_daily_counts)
    sample_status = staticmethod(sample_status)
    summary = staticmethod(summary)
    misreads = staticmethod(misreads)
