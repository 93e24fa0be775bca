"""Who may see a covert or restricted list's alert: the rule table of central/people/visibility.py."""

import msgspec
import pytest

from central.ingest.routing import Router
from central.people import visibility
from central.people.users import COVERT_ROLES, ROLES
from protocols.matching import ListAction, Watchlist
from tests import test_routing as routing_tests

RESTRICTED = {"secret"}


def restricted(list_id: str) -> bool:
    return list_id in RESTRICTED


#: (action, list id, what a privileged role sees, what any other role sees) — the table in the module's docstring
TABLE = [
    (ListAction.INTERCEPT, "open", True, True),
    (ListAction.NOTIFY, "open", True, True),
    (ListAction.COVERT, "open", True, False),
    (ListAction.INTERCEPT, "secret", True, False),
    (ListAction.NOTIFY, "secret", True, False),
    (ListAction.COVERT, "secret", True, False),
]


@pytest.mark.parametrize(("action", "list_id", "privileged", "others"), TABLE)
@pytest.mark.parametrize("role", [*ROLES, "", None, "edge", "metrics"])
def test_the_rule_table(role, action, list_id, privileged, others):
    expected = privileged if role in COVERT_ROLES else others
    assert visibility.may_see(role, action, list_id, restricted) is expected
    # the same rule given the action as the wire carries it (plain text)
    assert visibility.may_see(role, action.value, list_id, restricted) is expected
    assert visibility.privileged_only(action, list_id, restricted) is not others


def test_the_privileged_roles_are_the_searching_ones_and_not_the_officers():
    assert {r for r in ROLES if visibility.sees_privileged(r)} == {"commander", "analyst", "admin"}
    assert not visibility.sees_privileged(None)


def test_restricted_is_asked_at_the_moment_of_deciding():
    lists = {"a": Watchlist(list_id="a", name="A", action=ListAction.INTERCEPT)}
    ask = visibility.restricted_in(lambda: lists)
    assert not ask("a") and not ask("unknown")
    lists["a"] = msgspec.structs.replace(lists["a"], restricted=True)
    assert ask("a"), "a list that turned restricted is restricted from then on"


@pytest.mark.parametrize(("action", "list_id", "privileged", "others"), TABLE)
def test_checkpoints_get_exactly_what_every_role_may_see(action, list_id, privileged, others):
    """The router asks the same rule: a checkpoint gets an alert only when every role may see it."""
    alert = routing_tests.alert(action=action.value, list_id=list_id)
    router = Router(routing_tests.ROUTING, restricted=restricted)
    assert router.hidden(alert) is not others
    assert bool(router.recipients(alert)) is others
    assert visibility.alert_privileged(alert, restricted) is not others
