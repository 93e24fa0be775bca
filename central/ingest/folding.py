"""Folding repeated hits of one listed vehicle into its open alert (``alerts.fold_window_s``).

What folds into what is defined once, in protocols/folding.py, which the edges use for their tablets too:
a hit on the same entry of the same list, captured within the window of the open alert's sightings,
does not raise a new alert: the open alert's ``folded`` count, ``last_seen_at`` and ``last_seen_checkpoint``
grow instead. The fold key is the entry, so another listed vehicle is never held back by this one's window.
An alert with an outcome recorded is closed: the next hit raises a new alert. An outcome an officer
recorded for a hit folded into it (the reading edge alerted its tablets under that hit's own id) closes it too.

Everything is decided inside the writer's transaction, from the database (the alert store's ``fold`` and
``folded_or_raised``, ``central/record/sqlite/folding.py`` on SQLite): the folded hit's own alert id
is remembered in ``alert_folds``, so a replayed read (after an edge or hub restart) folds nothing twice
and never raises the alert it was folded into again."""

from __future__ import annotations

from central.record.folding import foldable

__all__ = ["foldable"]
