"""Who gets an alert, as configured in ``[routing]`` (docs/configuration.md):

- the checkpoint that read the vehicle (``why = "read"``);
- the checkpoint a camera (or a whole checkpoint) is an approach of, as an early warning (``"approach"``);
- the checkpoints downstream of the reading checkpoint for the read's direction (``"downstream"``);
- always the console, and the webhooks that take the alert's list, action and priority (central/alerts/webhooks.py).

A covert or restricted alert goes to no checkpoint at all. Each recipient gets the alert, under its own id
(derived from the read and the entry, the same for every recipient), on its own alerts topic: an edge's alert
log drops an id it has shown, so a resend reaches each tablet once."""

from __future__ import annotations

import msgspec

from central.people import visibility
from central.settings import RoutingSettings
from protocols.messages import Alert, AlertRoute


def unknown_checkpoints(settings: RoutingSettings, known: set[str]) -> list[str]:
    """Checkpoints a route names that the ring does not know (a typo routes an alert nowhere, silently)."""
    named = [a.checkpoint for a in settings.approach] + [d.from_ for d in settings.downstream]
    named += [cp for d in settings.downstream for cp in d.to]
    return sorted({cp for cp in named if cp not in known})


class Router:
    def __init__(
        self,
        settings: RoutingSettings | None = None,
        restricted: visibility.Restricted = visibility.never_restricted,
    ) -> None:
        settings = settings or RoutingSettings()
        self.restricted = restricted
        self.approach: dict[str, list[str]] = {}
        for a in settings.approach:
            self.approach.setdefault(a.source, []).append(a.checkpoint)
        self.downstream: dict[tuple[str, str | None], list[str]] = {}
        for d in settings.downstream:
            self.downstream.setdefault((d.from_, d.direction), []).extend(d.to)

    def hidden(self, alert: Alert) -> bool:
        """A covert list's hit, or a restricted list's: for the hub's privileged roles only, never a tablet."""
        return visibility.alert_privileged(alert, self.restricted)

    def routes(self, alert: Alert) -> list[AlertRoute]:
        """The checkpoints this alert goes to, each once (the first reason wins), in a stable order."""
        if self.hidden(alert):
            return []
        out: dict[str, str] = {alert.checkpoint: "read"}
        for source in (alert.camera_id, alert.checkpoint):
            for cp in self.approach.get(source, ()):
                out.setdefault(cp, "approach")
        for direction in (alert.direction, None) if alert.direction is not None else (None,):
            for cp in self.downstream.get((alert.checkpoint, direction), ()):
                out.setdefault(cp, "downstream")
        return [AlertRoute(checkpoint=cp, why=why) for cp, why in out.items()]  # type: ignore[arg-type]

    def route(self, alert: Alert) -> Alert:
        """The alert with ``routed_to`` filled in (done in the writer, before the alert is stored)."""
        return msgspec.structs.replace(alert, routed_to=self.routes(alert))

    def recipients(self, alert: Alert) -> list[str]:
        """Where to publish a stored alert: its routes (an alert stored before routing existed: its checkpoint);
        nowhere when it is covert or restricted (decided again now: a list may have turned restricted)."""
        if self.hidden(alert):
            return []
        if alert.routed_to:
            return [r.checkpoint for r in alert.routed_to]
        return [alert.checkpoint]
