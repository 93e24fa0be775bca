"""Which alerts fold, whatever holds them: only hits on a listed entry (the rule of
``protocols.folding``); the whole story is ``central.ingest.folding``."""

from __future__ import annotations

from protocols import folding
from protocols.messages import Alert


def foldable(alert: Alert) -> bool:
    """Only hits on a listed entry fold; clone findings and rules (no entry) always raise."""
    return folding.fold_key(alert) is not None
