"""What the statistics store gives, whatever holds it: the groupings, the alerts a caller may not know
of, and the names of the camera samples (the numbers' meaning is ``central.intel.stats``)."""

from __future__ import annotations

from collections.abc import Callable

from protocols.messages import Alert

GROUPS = ("checkpoint", "county", "city", "day")
#: Below this many outcomes a misread rate says little (the console marks it).
FEW_OUTCOMES = 20
#: The camera name under which a checkpoint's cameras are sampled as a whole.
ALL_CAMERAS = "*"

Hidden = Callable[[Alert], bool] | None
"""Alerts a caller may not know of (covert and restricted lists' hits for roles that do not see them)."""
