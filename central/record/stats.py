"""What the statistics store gives, whatever holds it: the groupings, the alerts a caller may not know
of, the names of the camera samples, and the summaries made from the rows a store reads (the numbers'
meaning is ``central.intel.stats``)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from central.record.days import day_of
from protocols.kits import KitResult
from protocols.messages import OUTCOMES, Alert

GROUPS = ("checkpoint", "county", "city", "day")
#: Below this many outcomes a misread rate says little (the console marks it).
FEW_OUTCOMES = 20
#: The camera name under which a checkpoint's cameras are sampled as a whole.
ALL_CAMERAS = "*"

Hidden = Callable[[Alert], bool] | None
"""Alerts a caller may not know of (covert and restricted lists' hits for roles that do not see them)."""


# -- the summaries, from rows any store reads ----------------------------------------------------------
# Each store reads its tables and hands the rows here, so the numbers are made the same way on every
# backend (``central.record.sqlite.stats``, ``central.record.postgresql.stats``).

Daily = Iterable[tuple[str, str, int, int, int]]
"""(day ISO, checkpoint, reads, passages, no-plate reads) from the per-day counts."""
Samples = Iterable[tuple[str, str, int, int]]
"""(day ISO, checkpoint, samples, stale) of the checkpoints' cameras as a whole (``ALL_CAMERAS``)."""
StaleCameras = Iterable[tuple[str, str, int, int]]
"""(checkpoint, camera, its checkpoint's samples over the period, stale samples) of each stale camera."""
AlertRow = tuple[bytes, str | None, float | None, float | None]
"""An alert's body with its first outcome: (body, outcome, acknowledged at, raised at the edge)."""

_alert_decoder = msgspec.json.Decoder(type=Alert)
_kit_decoder = msgspec.json.Decoder(type=KitResult)


def alerts_with_outcome(rows: Iterable[AlertRow], hidden: Hidden = None) -> list[tuple[Alert, tuple | None]]:
    """Alerts (without the ``hidden`` ones) with their first outcome (outcome, seconds to acknowledge)."""
    found = []
    for body, outcome, acked, edge_raised in rows:
        alert = _alert_decoder.decode(body)
        if hidden is not None and hidden(alert):
            continue
        first = None
        if outcome is not None:
            assert acked is not None
            first = (outcome, max(0.0, acked - (edge_raised if edge_raised is not None else alert.raised_at)))
        found.append((alert, first))
    return found


def _key(group: str, checkpoint: str, day: str, ring: dict[str, dict[str, Any]]) -> str:
    if group == "day":
        return day
    if group == "checkpoint":
        return checkpoint
    value = ring.get(checkpoint, {}).get(group)
    return str(value) if value else "?"


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))], 1)


def tally(
    group: str,
    first: dt.date,
    last: dt.date,
    tz: dt.timezone,
    ring: Iterable[dict[str, Any]],
    daily: Daily,
    alerts: list[tuple[Alert, tuple | None]],
    kits: Iterable[tuple[str, float, bytes]],
    samples: Samples,
    stale: StaleCameras,
) -> dict[str, Any]:
    """Every number over the days [first, last], one row per group value (``StatsStore.summary``);
    ``kits``: (checkpoint, sampled at, the KitResult's body) of the quick tests in the period."""
    by_cp = {str(c["checkpoint"]): c for c in ring}
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

    for day, cp, reads, passages, no_plate in daily:
        r = row(_key(group, cp, day, by_cp))
        r["reads"] += reads
        r["passages"] += passages
        r["no_plate"] += no_plate
    for alert, outcome in alerts:
        r = row(_key(group, alert.checkpoint, day_of(alert.raised_at, tz).isoformat(), by_cp))
        r["alerts"] += 1
        r["hits_by_list"][alert.hit.list_id] = r["hits_by_list"].get(alert.hit.list_id, 0) + 1
        r["hits_by_kind"][alert.hit.kind] = r["hits_by_kind"].get(alert.hit.kind, 0) + 1
        if outcome is not None:
            r["outcomes"][outcome[0]] += 1
            acks[r["key"]].append(outcome[1])
    for cp, sampled_at, body in kits:
        result = _kit_decoder.decode(body)
        r = row(_key(group, cp, day_of(sampled_at, tz).isoformat(), by_cp))
        r["tests"] += 1
        drugs = sorted({p.drug for p in result.panels if p.officer_call == "positive"})
        r["positives"] += 1 if drugs else 0
        for drug in drugs:
            r["positives_by_drug"][drug] = r["positives_by_drug"].get(drug, 0) + 1
    for day, cp, count, stale_count in samples:
        r = row(_key(group, cp, day, by_cp))
        r["camera_samples"] += count
        r["camera_stale"] += stale_count
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
        for cp, cam, s, st in stale
    ]
    return {
        "group": group,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "rows": sorted(rows.values(), key=lambda r: r["key"]),
        "stale_cameras": stale_cameras,
    }


def misread_rates(first: dt.date, last: dt.date, alerts: list[tuple[Alert, tuple | None]]) -> dict[str, Any]:
    """Misread outcomes over alerts with an outcome, per match kind and per list (``few`` when fewer
    than :data:`FEW_OUTCOMES` outcomes stand behind a rate; ``StatsStore.misreads``)."""
    by_kind: Counter[str] = Counter()
    bad_kind: Counter[str] = Counter()
    by_list: Counter[str] = Counter()
    bad_list: Counter[str] = Counter()
    for alert, outcome in alerts:
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
