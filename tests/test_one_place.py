"""One rule, one place (docs/architecture.md#one-place-for-each-rule): checks that fail when a rule that
has its one home is written again somewhere else.

The checks read the code's syntax trees, not its text, so a comment, a docstring or an SQL string never
trips them, and they look for the shape of the copy (a call, a comparison, a class), not for names that
a rename would dodge by accident. Each names the one place the rule lives.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.ingest.pipeline import Ingest
from protocols.matching import ListAction

ROOT = Path(__file__).resolve().parent.parent
CODE = ("protocols", "runtime", "edge", "central", "cordon")


def modules() -> Iterator[tuple[str, ast.Module]]:
    """Every module of Cordon's code (not the tests), by its path from the repository's root."""
    for package in CODE:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"))


def found(check, allowed: set[str] = frozenset()) -> list[str]:  # noqa: ANN001
    """``path:line`` of every node ``check`` accepts, outside the ``allowed`` modules."""
    return [
        f"{path}:{node.lineno}"
        for path, tree in modules()
        if path not in allowed
        for node in ast.walk(tree)
        if check(node)
    ]


def _name(node: ast.AST) -> str:
    """The dotted name of a Name or Attribute chain (``dt.datetime`` -> ``dt.datetime``), else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _name(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def test_the_search_finds_what_it_looks_for():
    """The walker sees every package (so a check that finds nothing found nothing for a reason)."""
    assert {path.split("/")[0] for path, _ in modules()} == set(CODE)
    defined = found(lambda n: isinstance(n, ast.FunctionDef) and n.name == "parse_time")
    assert any(p.startswith("protocols/times.py:") for p in defined), defined


# -- times ------------------------------------------------------------------------------------------


def test_times_are_parsed_only_by_protocols_times():
    """``datetime.fromisoformat`` of a moment only in protocols/times.py (``date.fromisoformat`` of a
    day, YYYY-MM-DD, is not a moment). cordon/pki.py reads back the revocation times it wrote itself."""

    def parses_a_moment(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "fromisoformat"
            and _name(node.value).split(".")[-1] == "datetime"
        )

    assert found(parses_a_moment, {"protocols/times.py", "cordon/pki.py"}) == []


# -- topics -----------------------------------------------------------------------------------------


def test_topics_are_built_and_parsed_only_in_protocols_topics():
    """No topic text (``cordon/v1...``) and no string surgery on a ``topic`` outside protocols/topics.py."""

    def topic_text(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("cordon/v1")
        )

    def cuts_a_topic(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"endswith", "startswith", "split", "rsplit", "partition", "rpartition"}
            and _name(node.func.value).split(".")[-1] in {"topic", "topic_name"}
        )

    allowed = {"protocols/topics.py", "protocols/asyncapi_gen.py"}
    assert found(topic_text, allowed) == []
    assert found(cuts_a_topic, allowed) == []


# -- list actions and who sees what -----------------------------------------------------------------

ACTIONS = {a.value for a in ListAction}


def test_list_actions_are_compared_as_list_action_not_retyped():
    """No comparison with a list action's text (``== "covert"``, ``in ("covert", ...)``) outside
    protocols/: compare with ``ListAction``. SQL text is no comparison, so it is not caught here."""

    def retyped(node: ast.AST) -> bool:
        if not isinstance(node, ast.Compare):
            return False
        sides = [node.left, *node.comparators]
        texts = [s.value for s in sides if isinstance(s, ast.Constant)]
        texts += [
            e.value
            for s in sides
            if isinstance(s, ast.Tuple | ast.List | ast.Set)
            for e in s.elts
            if isinstance(e, ast.Constant)
        ]
        return any(isinstance(t, str) and t in ACTIONS for t in texts)

    outside = [p for p in found(retyped) if not p.startswith("protocols/")]
    assert outside == []


def test_who_sees_a_covert_alert_is_decided_only_in_people_visibility():
    """The privileged roles are asked of central/people/visibility.py (defined in people/users.py)."""

    def asks_the_roles(node: ast.AST) -> bool:
        return isinstance(node, ast.Name | ast.Attribute) and _name(node).split(".")[-1] == "COVERT_ROLES"

    assert found(asks_the_roles, {"central/people/users.py", "central/people/visibility.py"}) == []

    def decides_restricted(node: ast.AST) -> bool:
        # the shape the copies had: ``watchlist is not None and watchlist.restricted``
        if not (isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And)):
            return False
        tests_none = any(
            isinstance(v, ast.Compare) and any(isinstance(op, ast.IsNot) for op in v.ops) for v in node.values
        )
        reads_flag = any(isinstance(v, ast.Attribute) and v.attr == "restricted" for v in node.values)
        return tests_none and reads_flag

    assert found(decides_restricted, {"central/people/visibility.py"}) == []
    assert found(decides_restricted) != [], "the one place has it"


# -- audited searches -------------------------------------------------------------------------------


def test_a_search_reason_is_read_only_by_the_guard():
    """``query.get("reason")`` only in central/web/guards.py (``audited_search``, ``required_reason``)."""

    def reads_the_reason(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"get", "getone", "__getitem__"}
            and _name(node.func.value).endswith("query")
            and bool(node.args)
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "reason"
        )

    assert found(reads_the_reason, {"central/web/guards.py"}) == []

    def checks_old_data(node: ast.AST) -> bool:
        return isinstance(node, ast.Name | ast.Attribute) and _name(node).split(".")[-1] in {
            "OLD_DATA_DAYS",
            "OLD_DATA_ROLES",
        }

    assert found(checks_old_data, {"central/web/guards.py"}) == []


# -- files ------------------------------------------------------------------------------------------


def test_watchlist_and_ring_files_are_parsed_in_their_one_module():
    """A CSV reader in the hub's watchlists only in files.py; the ring file read only through
    protocols/ring.py (its shipped copy opened only by central/intel/ring.py)."""

    def reads_csv(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and _name(node) in {"csv.reader", "csv.DictReader"}

    watchlists = [p for p in found(reads_csv) if p.startswith("central/watchlists/")]
    assert {p.split(":")[0] for p in watchlists} <= {"central/watchlists/files.py"}

    def opens_the_shipped_ring(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr in {"read_text", "open", "read_bytes"}
            and _name(node.value).split(".")[-1] == "SHIPPED"
        )

    assert found(opens_the_shipped_ring) == []

    def parses_a_ring(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in {"lat", "lon"}

    assert {p.split(":")[0] for p in found(parses_a_ring)} <= {"protocols/ring.py", "central/intel/ring.py"}


# -- errors, settings, the MQTT link, ingest --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("CordonError", "protocols/errors.py"),
        ("ConfigError", "protocols/errors.py"),
        ("LinkState", "runtime/link.py"),
        ("MetricsSettings", "runtime/settings.py"),
        ("RingError", "protocols/ring.py"),
        ("TimeError", "protocols/times.py"),
        ("IngestListener", "central/ingest/listener.py"),
    ],
)
def test_each_shared_type_is_defined_once(name, home):
    assert (
        found(lambda n: isinstance(n, ast.ClassDef) and n.name == name)
        == [p for p in found(lambda n: isinstance(n, ast.ClassDef) and n.name == name) if p.startswith(home)]
        != []
    )


def test_the_sides_settings_sections_extend_the_shared_ones():
    """A side's ``[http]`` and ``[mqtt]`` extend runtime/settings.py's, never start over."""
    for path in ("central/settings.py", "edge/settings.py"):
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name in {"HttpSettings", "MqttSettings"}:
                assert [_name(b) for b in node.bases] == [f"shared.{node.name}"], (path, node.name)


def test_the_refusals_not_worth_retrying_are_listed_once():
    def lists_refusals(node: ast.AST) -> bool:
        return isinstance(node, ast.Dict) and {134, 135} <= {
            k.value for k in node.keys if isinstance(k, ast.Constant)
        }

    assert (
        found(lists_refusals) == [p for p in found(lists_refusals) if p.startswith("runtime/link.py")] != []
    )


def test_ingest_takes_one_listener_not_callbacks():
    params = inspect.signature(Ingest).parameters
    assert "listener" in params
    assert [p for p in params if p.startswith("on_")] == []
