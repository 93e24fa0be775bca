"""Retention: the hub forgets what it no longer needs, on a schedule, and says so in the audit trail.

Plain reads and passages go after ``record.retention_days`` (whole day files, see central/record/sqlite/dayfiles.py);
alerts, their outcomes, edge hits, gap reports and dead letters after ``record.hits_retention_days``. The
audit trail itself is never purged. One run is one call of :func:`purge`, given the time to purge at, so a
test drives it with a clock of its own.

Among several hubs on one database it is the ``retention`` duty (central/record/duties.py): the run's audit
record is written under the duty's fence, so a run of a hub that lost the duty meanwhile is not recorded as
one (what it purged was due either way, and purging it again finds nothing).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from central.record.days import day_of
from central.record.stores import HubStores
from central.record.tx import Tx
from central.settings import RecordSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PurgeReport:
    reads_before: dt.date
    hits_before: float
    days: list[dt.date] = field(default_factory=list)
    hit_rows: dict[str, int] = field(default_factory=dict)


def purge(
    store: HubStores,
    settings: RecordSettings,
    now: float,
    *,
    hub: str = "",
    fence: Callable[[Tx], None] | None = None,
) -> PurgeReport:
    """One retention run at ``now`` (blocking: call it from a thread). Audited, also when nothing went,
    naming the ``hub`` that ran it; ``fence`` runs first in the audit record's transaction (it raises
    when this hub no longer holds the duty)."""
    reads_before = day_of(now, store.record.tz) - dt.timedelta(days=settings.retention_days - 1)
    hits_before = now - settings.hits_retention_days * 86400
    days = store.purge_before(reads_before)
    hit_rows = store.purge_hits_before(hits_before)
    report = PurgeReport(reads_before, hits_before, days, hit_rows)
    detail = {
        "days": [d.isoformat() for d in days],
        "retention_days": settings.retention_days,
        "hits_retention_days": settings.hits_retention_days,
        "hits_before": round(hits_before),
        "rows": {k: v for k, v in hit_rows.items() if v},
    }
    if hub:
        detail["hub"] = hub

    def audit(db: Tx) -> None:
        if fence is not None:
            fence(db)
        store.audit.append(
            db,
            "retention",
            "system",
            "retention.purge",
            target=f"reads before {reads_before.isoformat()}",
            detail=detail,
            at=now,
        )

    store.submit(audit).result()
    if days or any(hit_rows.values()):
        log.info(
            "retention: %d day(s) of reads before %s, %s",
            len(days),
            reads_before,
            ", ".join(f"{n} {t}" for t, n in hit_rows.items() if n) or "no hits",
        )
    return report
