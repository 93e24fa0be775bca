"""Transport permits (precursor chemicals, hazardous goods): a vehicle of a watched class must be on the list.

A permit rule watches vehicles by plate colour and/or vehicle type (a yellow-plated tanker, say)
and names a permit list; a read of a watched vehicle whose plate is not on that list is a hit.
"On the list" is an active EXACT or EQUIVALENT match (``PERMIT_KINDS``): a looser kind would let
a misread stand in for a permit. Any index that answers ``on_list`` can be asked.

Pure: standard library and msgspec only, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from protocols.matching import MATCHER_VERSION, Hit, MatchKind, PermitRule, readable, sort_hits

__all__ = ["PERMIT_KINDS", "PermitLookup", "check_permit"]

#: Match kinds that put a plate on a permit list.
PERMIT_KINDS = frozenset({MatchKind.EXACT, MatchKind.EQUIVALENT})


class PermitLookup(Protocol):
    def on_list(
        self,
        plate: str,
        list_id: str,
        *,
        now: float,
        colour: str | None = None,
        vehicle_type: str | None = None,
    ) -> bool: ...


def _rule_watches(rule: PermitRule, colour: str | None, vehicle_type: str | None) -> bool:
    if not rule.colours and not rule.vehicle_types:
        return False
    if rule.colours and colour not in rule.colours:
        return False
    if rule.vehicle_types and vehicle_type not in rule.vehicle_types:
        return False
    return True


def check_permit(
    read_plate: str,
    colour: str | None,
    vehicle_type: str | None,
    rules: Iterable[PermitRule],
    permit_index: PermitLookup,
    now: float,
    *,
    feed_version: int = 0,
) -> list[Hit]:
    """Hits for every rule that watches this vehicle's class while its plate is not on the permit list.

    "On the list" means an active EXACT or EQUIVALENT match of an entry of the rule's list (an
    unknown list holds nothing, so its watched vehicles are all flagged: fail closed). A read
    without the attributes a rule watches is not of that class.
    """
    if not readable(read_plate):
        return []
    hits = []
    for rule in rules:
        if not _rule_watches(rule, colour, vehicle_type):
            continue
        if permit_index.on_list(read_plate, rule.list_id, now=now, colour=colour, vehicle_type=vehicle_type):
            continue
        what = " ".join(w for w in (vehicle_type, colour) if w)
        hits.append(
            Hit(
                entry_id=rule.rule_id,
                list_id=rule.list_id,
                kind=MatchKind.EXACT,
                score=1.0,
                explanation=f"{what} plate {read_plate} has no {rule.permit_name}".strip(),
                read_plate=read_plate,
                entry_plate="",
                action=rule.action,
                priority=rule.priority,
                feed_version=feed_version,
                matcher_version=MATCHER_VERSION,
            )
        )
    return sort_hits(hits)
