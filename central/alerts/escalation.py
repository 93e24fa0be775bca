"""Intercept alerts nobody answered: after ``console.escalate_after_s`` without an outcome an alert is
escalated, once, in the audit trail (action ``alert.escalated``) and on every console.

The check and the audit record are written in one writer transaction (the alert store's
``escalate_due``), so an alert is escalated exactly once, also across restarts: the audit trail itself
is the memory of what was escalated (``central.record.escalation``)."""

from __future__ import annotations

from central.record.escalation import ACTION, ACTOR, LOOKBACK_S, frame
from protocols.matching import ListAction

__all__ = ["ACTION", "ACTION_OF_ESCALATED", "ACTOR", "LOOKBACK_S", "check_interval", "frame"]

#: The action of every alert that escalates (the alert store's ``escalate_due`` takes only these): an
#: escalation frame names its list but not its action, and who may see it is decided by both
#: (central/people/visibility.py).
ACTION_OF_ESCALATED = ListAction.INTERCEPT


def check_interval(after_s: float) -> float:
    """Look a few times per escalation period, never busier than twice a second nor lazier than 10 s."""
    return max(0.5, min(10.0, after_s / 4))
