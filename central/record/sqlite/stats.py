"""The command center's numbers on hub.db: per-day counts kept at ingest (``daily_counts``), camera uptime
samples (``camera_samples``), and the summaries read from them and from alerts, outcomes and quick tests
(see ``central.intel.stats`` for what they mean)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec
import sqlite_utils

from central.record.days import day_bounds, day_of
from central.record.stats import ALL_CAMERAS, FEW_OUTCOMES, GROUPS, Hidden
from protocols.kits import KitResult
from protocols.messages import OUTCOMES, Alert, CheckpointStatus

_alert_decoder = msgspec.json.Decoder(type=Alert)
_kit_decoder = msgspec.json.Decoder(type=KitResult)


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


def _key(group: str, checkpoint: str, day: str, ring: dict[str, dict[str, Any]]) -> str:
    if group == "day":
        return day
    if group == "checkpoint":
        return checkpoint
    value = ring.get(checkpoint, {}).get(group)
    return str(value) if value else "?"


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
    found = []
    for body, outcome, acked, edge_raised in rows:
        alert = _alert_decoder.decode(body)
        if hidden is not None and hidden(alert):
            continue
        first = None
        if outcome is not None:
            first = (outcome, max(0.0, acked - (edge_raised if edge_raised is not None else alert.raised_at)))
        found.append((alert, first))
    return found


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))], 1)


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
    by_cp = {str(c["checkpoint"]): c for c in ring}
    since, until = day_bounds(first, tz)[0], day_bounds(last, tz)[1]
    lo, hi = first.isoformat(), last.isoformat()
    rows: dict[str, dict[str, Any]] = {}
    acks: dict[str, list[float]] = defaultdict(list)

    def row(key: str) -> dict[str, Any]:
        if key not in rows:
            rows[key] = {
                "key": key,
                "reads": 0,
                "passages": 0,
                "no_plate": 0,
                "alerts": 0,
                "hits_by_list": {},
                "hits_by_kind": {},
                "outcomes": dict.fromkeys(OUTCOMES, 0),
                "tests": 0,
                "positives": 0,
                "positives_by_drug": {},
                "camera_samples": 0,
                "camera_stale": 0,
            }
        return rows[key]

    for day, cp, reads, passages, no_plate in db.conn.execute(
        "SELECT day, checkpoint, reads, passages, no_plate FROM daily_counts WHERE day BETWEEN ? AND ?",
        (lo, hi),
    ):
        r = row(_key(group, cp, day, by_cp))
        r["reads"] += reads
        r["passages"] += passages
        r["no_plate"] += no_plate
    for alert, outcome in _alerts(db, since, until, hidden):
        r = row(_key(group, alert.checkpoint, day_of(alert.raised_at, tz).isoformat(), by_cp))
        r["alerts"] += 1
        r["hits_by_list"][alert.hit.list_id] = r["hits_by_list"].get(alert.hit.list_id, 0) + 1
        r["hits_by_kind"][alert.hit.kind] = r["hits_by_kind"].get(alert.hit.kind, 0) + 1
        if outcome is not None:
            r["outcomes"][outcome[0]] += 1
            acks[r["key"]].append(outcome[1])
    for cp, sampled_at, body in db.conn.execute(
        "SELECT checkpoint, sampled_at, body FROM kit_results WHERE sampled_at >= ? AND sampled_at < ?",
        (since, until),
    ):
        result = _kit_decoder.decode(body)
        r = row(_key(group, cp, day_of(sampled_at, tz).isoformat(), by_cp))
        r["tests"] += 1
        drugs = sorted({p.drug for p in result.panels if p.officer_call == "positive"})
        r["positives"] += 1 if drugs else 0
        for drug in drugs:
            r["positives_by_drug"][drug] = r["positives_by_drug"].get(drug, 0) + 1
    for day, cp, samples, stale in db.conn.execute(
        "SELECT day, checkpoint, samples, stale FROM camera_samples WHERE camera = ? AND day BETWEEN ? AND ?",
        (ALL_CAMERAS, lo, hi),
    ):
        r = row(_key(group, cp, day, by_cp))
        r["camera_samples"] += samples
        r["camera_stale"] += stale
    for key, r in rows.items():
        times = acks.get(key, [])
        r["ack_median_s"] = round(statistics.median(times), 1) if times else None
        r["ack_p90_s"] = _pct(times, 0.9)
        r["camera_uptime"] = (
            round(1 - r["camera_stale"] / r["camera_samples"], 4) if r["camera_samples"] else None
        )
    # A camera has a row only on days it went stale: its samples are its checkpoint's over the period.
    stale_cameras = [
        {
            "checkpoint": cp,
            "camera": cam,
            "samples": s,
            "stale": st,
            "uptime": round(1 - st / s, 4) if s else None,
        }
        for cp, cam, s, st in db.conn.execute(
            """SELECT c.checkpoint, c.camera, (SELECT SUM(a.samples) FROM camera_samples a
                         WHERE a.checkpoint = c.checkpoint AND a.camera = ? AND a.day BETWEEN ? AND ?), SUM(c.stale)
                         FROM camera_samples c WHERE c.camera != ? AND c.day BETWEEN ? AND ?
                         GROUP BY c.checkpoint, c.camera""",
            (ALL_CAMERAS, lo, hi, ALL_CAMERAS, lo, hi),
        )
    ]
    return {
        "group": group,
        "from": lo,
        "to": hi,
        "rows": sorted(rows.values(), key=lambda r: r["key"]),
        "stale_cameras": stale_cameras,
    }


def misreads(
    db: sqlite_utils.Database, first: dt.date, last: dt.date, tz: dt.timezone, hidden: Hidden = None
) -> dict[str, Any]:
    """Misread outcomes over alerts with an outcome, per match kind and per list (``few`` when fewer
    than :data:`FEW_OUTCOMES` outcomes stand behind a rate)."""
    since, until = day_bounds(first, tz)[0], day_bounds(last, tz)[1]
    by_kind: Counter[str] = Counter()
    bad_kind: Counter[str] = Counter()
    by_list: Counter[str] = Counter()
    bad_list: Counter[str] = Counter()
    for alert, outcome in _alerts(db, since, until, hidden):
        if outcome is None:
            continue
        by_kind[alert.hit.kind] += 1
        by_list[alert.hit.list_id] += 1
        if outcome[0] == "misread":
            bad_kind[alert.hit.kind] += 1
            bad_list[alert.hit.list_id] += 1

    def rates(total: Counter[str], bad: Counter[str], name: str) -> list[dict[str, Any]]:
        return [
            {
                name: k,
                "outcomes": n,
                "misreads": bad[k],
                "rate": round(bad[k] / n, 4),
                "few": n < FEW_OUTCOMES,
            }
            for k, n in sorted(total.items())
        ]

    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "by_kind": rates(by_kind, bad_kind, "kind"),
        "by_list": rates(by_list, bad_list, "list_id"),
    }


class SqliteStatsStore:
    """``StatsStore`` on hub.db: the functions above, as the store's ``stats``."""

    add_daily_counts = staticmethod(add_daily_counts)
    sample_status = staticmethod(sample_status)
    summary = staticmethod(summary)
    misreads = staticmethod(misreads)
