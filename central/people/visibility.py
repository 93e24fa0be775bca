"""Who may see a covert or restricted list's alert: the one rule every part of the hub asks.

A hit on a covert list (action ``covert``: observe, never alarm the vehicle's occupants) or on a restricted
list is *privileged*: it is for the hub's privileged roles only (``COVERT_ROLES``), and never leaves the
hub: no tablet, no checkpoint, no 视图库 notification, no console of another role, no count in another
role's statistics, no evidence picture for another role.

=====================================  ==================  ===========  ================================
the alert's list                       privileged roles    other roles  checkpoints (tablets, 视图库)
=====================================  ==================  ===========  ================================
intercept or notify, not restricted    see it              see it       get it (as routed)
covert                                 see it              not          not
restricted (whatever its action)       see it              not          not
=====================================  ==================  ===========  ================================

Whether a list is restricted is asked at the moment of deciding (a list may turn restricted after its
alerts were raised), through a ``Restricted`` function of the list id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from central.people.users import COVERT_ROLES
from protocols.matching import ListAction
from protocols.messages import Alert

Restricted = Callable[[str], bool]
"""True when the list with this id is restricted now."""


class _Listed(Protocol):
    restricted: bool


def never_restricted(list_id: str) -> bool:
    """For a part that knows no lists (a test, a tool): no list is restricted."""
    return False


def restricted_in(lists: Callable[[], Mapping[str, _Listed]]) -> Restricted:
    """The ``Restricted`` function of the lists ``lists()`` returns at each call (an unknown list is not)."""

    def restricted(list_id: str) -> bool:
        found = lists().get(list_id)
        return found is not None and found.restricted

    return restricted


def privileged_only(action: str, list_id: str, restricted: Restricted) -> bool:
    """A covert list's hit, or a restricted list's: for the privileged roles only, never a checkpoint."""
    return action == ListAction.COVERT or restricted(list_id)


def alert_privileged(alert: Alert, restricted: Restricted) -> bool:
    """``privileged_only`` for an alert."""
    return privileged_only(alert.hit.action, alert.hit.list_id, restricted)


def sees_privileged(role: str | None) -> bool:
    """True when this role sees covert and restricted lists' alerts."""
    return role in COVERT_ROLES


def may_see(role: str | None, action: str, list_id: str, restricted: Restricted) -> bool:
    """True when a person of this role may know of a hit on this list with this action."""
    return sees_privileged(role) or not privileged_only(action, list_id, restricted)
