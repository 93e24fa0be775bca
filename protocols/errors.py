"""Cordon's one exception tree: every error Cordon raises on purpose descends from :class:`CordonError`.

It lives in ``protocols/`` because that is the one package every other package may import (``protocols``
imports nothing of Cordon's, and this module no I/O), so the wire rules' own errors (a bad topic, a bad
message) can join the tree as well as the hub's and the edge's. ``runtime/`` would not do: ``protocols``
may not import it.

The branches:

- :class:`ConfigError`: settings, or a file the settings name, that cannot be used. Start-up stops with
  one line naming the key or the file (``cordon`` prints it and exits with status 2).
- everything else derives from :class:`CordonError` directly (``cordon`` prints it, status 1).

Each error keeps the built-in class it had (``ValueError``, ``RuntimeError``) as a second base, so code
that caught those goes on catching them.
"""

from __future__ import annotations


class CordonError(Exception):
    """Base of every error Cordon raises on purpose; its message is one line a person can act on."""


class ConfigError(CordonError):
    """Settings, or a file they name, that cannot be used; the message names the key or the file."""
