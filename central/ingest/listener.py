"""What ingest tells the rest of the hub after each commit: one interface with its seven events.

Ingest calls these from the store's writer thread, after the commit that makes them true, in this order:
alerts raised, alerts folded, a checkpoint's status, outcomes, pictures, quick-test results, receipts.
An implementation hands the work on (to the event loop, to the dispatcher) and returns at once: the
writer waits for it. The hub's is ``central.app.HubEvents``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from protocols.messages import Alert, AlertOutcome, CheckpointStatus, KitResultEvent


class IngestListener(Protocol):
    def alerts_raised(self, alerts: list[Alert]) -> None:
        """New alerts were stored (each once): they go to the consoles and the routed checkpoints."""

    def alerts_folded(self, alerts: list[Alert]) -> None:
        """Open alerts grew by a repeated hit (count, last sighting): the consoles update them."""

    def status_changed(self, status: CheckpointStatus, clock_offset_s: float | None) -> None:
        """An edge said how it is (online, offline, its cameras); ``clock_offset_s`` its clock's skew."""

    def outcomes_recorded(self, outcomes: list[tuple[str, AlertOutcome]]) -> None:
        """Officers recorded what came of alerts: (checkpoint, outcome) pairs."""

    def pictures_arrived(self, alerts: list[Alert]) -> None:
        """Edge hits brought pictures for alerts that are already out: the consoles show them."""

    def kits_recorded(self, kits: list[tuple[str, KitResultEvent]]) -> None:
        """Drug quick-test results were stored: (checkpoint, result) pairs."""

    def receipts_recorded(self, receipts: list[dict[str, Any]]) -> None:
        """Tablets showed alarms, or officers acknowledged them (docs/protocol.md#alarm-receipts)."""


@dataclass
class Recorder:
    """An ``IngestListener`` that keeps what it is told, in order (tests and benchmarks; a tool that
    wants no events passes one and ignores it)."""

    alerts: list[Alert] = field(default_factory=list)
    folded: list[Alert] = field(default_factory=list)
    statuses: list[CheckpointStatus] = field(default_factory=list)
    clock_offsets: list[float | None] = field(default_factory=list)
    outcomes: list[tuple[str, AlertOutcome]] = field(default_factory=list)
    pictures: list[Alert] = field(default_factory=list)
    kits: list[tuple[str, KitResultEvent]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)

    def alerts_raised(self, alerts: list[Alert]) -> None:
        self.alerts.extend(alerts)

    def alerts_folded(self, alerts: list[Alert]) -> None:
        self.folded.extend(alerts)

    def status_changed(self, status: CheckpointStatus, clock_offset_s: float | None) -> None:
        self.statuses.append(status)
        self.clock_offsets.append(clock_offset_s)

    def outcomes_recorded(self, outcomes: list[tuple[str, AlertOutcome]]) -> None:
        self.outcomes.extend(outcomes)

    def pictures_arrived(self, alerts: list[Alert]) -> None:
        self.pictures.extend(alerts)

    def kits_recorded(self, kits: list[tuple[str, KitResultEvent]]) -> None:
        self.kits.extend(kits)

    def receipts_recorded(self, receipts: list[dict[str, Any]]) -> None:
        self.receipts.extend(receipts)
