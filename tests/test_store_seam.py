"""The store seam (issue 21): the hub reaches its storage only through the Protocols of
``central/record/stores.py``. Outside ``central/record/`` no module imports ``sqlite3``, ``sqlite_utils``
or the SQLite writer, and no string literal holds SQL; inside ``central/record/`` only ``sqlite/`` (the
SQLite implementations) touches SQLite, and ``postgresql/`` holds PostgreSQL's SQL."""

import ast
import inspect
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CENTRAL = ROOT / "central"
RECORD = CENTRAL / "record"
SQLITE_DIR = RECORD / "sqlite"

#: What only the SQLite implementations may import.
SQLITE_MODULES = ("sqlite3", "sqlite_utils", "runtime.sqlwriter", "runtime.deadletters")

#: A statement's opening words, upper case as the project writes SQL (prose says "select" in lower case).
SQL = re.compile(
    r"\b(SELECT\s+[\w*(]|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|"
    r"CREATE\s+(UNIQUE\s+)?(TABLE|INDEX|VIEW|TRIGGER)\b|ALTER\s+TABLE\b|DROP\s+(TABLE|INDEX)\b|"
    r"PRAGMA\s+\w+|BEGIN\s+(IMMEDIATE|EXCLUSIVE)\b|ATTACH\s+DATABASE\b|ON\s+CONFLICT\b)"
)


def sqlite_imports(path: Path) -> list[str]:
    """The SQLite modules a file imports (``from runtime.sqlwriter import X`` counts as the writer)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in names:
            if any(name == m or name.startswith(m + ".") for m in SQLITE_MODULES):
                found.append(name)
    return sorted(set(found))


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings (prose, not SQL)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
        # An attribute's docstring: a bare string right after an assignment.
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list):
                for stmt in stmts[1:]:
                    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                        ids.add(id(stmt.value))
    return ids


def sql_literals(path: Path) -> list[str]:
    """String literals (f-string parts included) that read as SQL, each cut to 60 characters."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prose = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            if SQL.search(node.value):
                found.append(" ".join(node.value.split())[:60])
    return found


def offences(root: Path, skip: Path | None = None) -> dict[str, list[str]]:
    """Every file under ``root`` (but ``skip``) that imports SQLite or writes SQL, with what it does."""
    bad: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        if skip is not None and path.is_relative_to(skip):
            continue
        what = [f"imports {m}" for m in sqlite_imports(path)]
        if not path.is_relative_to(RECORD):
            what += [f"SQL {s!r}" for s in sql_literals(path)]
        if what:
            bad[str(path.relative_to(ROOT if path.is_relative_to(ROOT) else root))] = what
    return bad


def test_nothing_outside_the_record_touches_sqlite_or_writes_sql():
    outside = {k: v for k, v in offences(CENTRAL).items() if not (ROOT / k).is_relative_to(RECORD)}
    assert not outside, (
        f"storage outside central/record/ (use a store of central/record/stores.py): {outside}"
    )


def test_the_hub_reaches_the_implementations_only_through_the_factory():
    """Above ``record/`` the hub names the Protocols; only ``record/factory.py`` names an implementation."""
    bad = {}
    for path in sorted(CENTRAL.rglob("*.py")):
        if path.is_relative_to(RECORD):
            continue
        named = set()
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(n, ast.Import):
                named |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.module:
                named |= {n.module, *(f"{n.module}.{a.name}" for a in n.names)}
        wrong = sorted(
            {m for m in named if m and m.startswith(("central.record.sqlite", "central.record.postgresql"))}
        )
        if wrong:
            bad[str(path.relative_to(ROOT))] = wrong
    assert not bad, f"implementations named above the seam (use central.record.stores): {bad}"


def test_the_postgresql_record_is_a_read_store():
    from central.record.postgresql.reads import PgReadStore
    from central.record.reads import ReadStore

    wanted = {m for m in vars(ReadStore) if not m.startswith("_")} | set(ReadStore.__annotations__)
    assert not sorted(m for m in wanted if m != "tz" and not hasattr(PgReadStore, m))
    assert "self.tz =" in Path(inspect.getsourcefile(PgReadStore)).read_text(encoding="utf-8")


def test_only_the_sqlite_implementations_touch_sqlite():
    inside = offences(RECORD, skip=SQLITE_DIR)
    assert not inside, f"SQLite outside central/record/sqlite/: {inside}"


def test_the_record_names_its_stores(tmp_path):
    """The Protocols the rest of the hub is written against exist, and the SQLite stores have every method."""
    from central.record import stores
    from central.record.sqlite.store import HubStore

    names = (
        "AlertStore",
        "ReadStore",
        "WatchlistStore",
        "UserStore",
        "LoginLimitStore",
        "AuditStore",
        "WebhookStore",
        "KitResultStore",
        "StatsStore",
        "ImportJobStore",
        "EvidenceStore",
        "DutyStore",
        "IngestStore",
        "HubStores",
    )
    assert all(getattr(getattr(stores, n, None), "_is_protocol", False) for n in names)

    def methods(protocol: type) -> set[str]:
        return {m for k in protocol.__mro__ if k is not object for m in vars(k) if not m.startswith("_")}

    hub = HubStore(tmp_path / "hub.db")  # not started: nothing is opened
    parts = {
        stores.HubStores: hub,
        stores.ReadStore: hub.record,
        stores.AuditStore: hub.audit,
        stores.UserStore: hub.users,
        stores.WatchlistStore: hub.watchlists,
        stores.WebhookStore: hub.webhooks,
        stores.StatsStore: hub.stats,
    }
    from central.record import factory
    from central.settings import HubSettings

    settings = HubSettings(data_dir=str(tmp_path))
    parts |= {
        stores.LoginLimitStore: factory.open_login_limits(settings),
        stores.ImportJobStore: factory.open_import_jobs(settings),
        stores.EvidenceStore: factory.open_evidence(settings),
        stores.DutyStore: factory.open_duties(settings),
    }
    for protocol, implementation in parts.items():
        missing = sorted(m for m in methods(protocol) if not hasattr(implementation, m))
        assert not missing, f"{type(implementation).__name__} lacks {protocol.__name__}'s {missing}"


CONTAINER_METHODS = ("__len__", "__getitem__", "__setitem__", "__contains__", "__iter__")

#: The implementations of the stores a hub keeps beside hub.db: built by ``record/factory.py`` only.
SIDE_IMPLEMENTATIONS = ("MemoryImportJobs", "EvidenceFiles", "LoginLimiter", "SoleDuties")


def store_protocols() -> dict[str, set[str]]:
    """Each Protocol of ``central/record/stores.py`` (but ``HubStores``, made of the others) with the methods
    it asks for (public ones, and the container methods such as ``__len__``)."""
    from central.record import stores

    def asked(protocol: type) -> set[str]:
        return {
            m
            for k in protocol.__mro__
            if k.__module__ == stores.__name__ or k.__name__ == "ReadStore"
            for m, v in vars(k).items()
            if callable(v) and (not m.startswith("_") or m in CONTAINER_METHODS)
        }

    return {
        name: asked(getattr(stores, name))
        for name in stores.__all__
        if getattr(getattr(stores, name), "_is_protocol", False) and name != "HubStores"
    }


def test_no_store_is_implemented_above_the_record():
    """A class above ``record/`` with every method of a store's Protocol is a store in the wrong place,
    and above ``record/`` nothing names the side stores' implementations (the factory builds them)."""
    protocols = store_protocols()
    bad = {}
    for path in sorted(CENTRAL.rglob("*.py")):
        if path.is_relative_to(RECORD):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                defined = {f.name for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
                bad.update(
                    {
                        f"{path.relative_to(ROOT)}:{node.name}": name
                        for name, m in protocols.items()
                        if m and m <= defined
                    }
                )
            elif isinstance(node, ast.Name | ast.alias | ast.Attribute):
                name = getattr(node, "id", None) or getattr(node, "name", None) or getattr(node, "attr", "")
                if name.rsplit(".", 1)[-1] in SIDE_IMPLEMENTATIONS:
                    bad[f"{path.relative_to(ROOT)}:{node.lineno if hasattr(node, 'lineno') else ''}"] = name
    assert not bad, f"stores implemented or named above central/record/ (use record/factory.py): {bad}"


def test_the_hub_holds_its_side_stores_by_their_protocols():
    """The app keys of the login limits, the import jobs and the evidence pictures are typed by the
    Protocols, and the evidence broker is given an ``EvidenceStore``."""
    import typing

    from central.alerts.evidence import EvidenceBroker
    from central.record import stores
    from central.web import keys

    assert keys.LOGIN_LIMITS._t is stores.LoginLimitStore
    assert keys.IMPORT_JOBS._t is stores.ImportJobStore
    assert typing.get_type_hints(EvidenceBroker.__init__)["store"] is stores.EvidenceStore


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import sqlite3\n", "imports sqlite3"),
        ("import sqlite_utils\n", "imports sqlite_utils"),
        ("from runtime.sqlwriter import NeedsPreparation\n", "imports runtime.sqlwriter"),
        ('q = "SELECT body FROM alerts WHERE alert_id=?"\n', "SQL"),
        ('q = f"UPDATE alerts SET body={1}"\n', "SQL"),
        ('q = "INSERT OR IGNORE INTO x VALUES (?)"\n', "SQL"),
    ],
)
def test_the_check_sees_what_it_is_for(tmp_path, source, expected):
    (tmp_path / "probe.py").write_text(source, encoding="utf-8")
    found = offences(tmp_path)
    assert found and any(w.startswith(expected) for w in next(iter(found.values())))


@pytest.mark.parametrize(
    "source",
    [
        '"""Select the alerts, then update the counts; insert into the queue."""\n',
        'def f():\n    """SELECT is how a reader would say it in a docstring."""\n',
        'label = "select a list"\n',
    ],
)
def test_the_check_leaves_prose_alone(tmp_path, source):
    (tmp_path / "probe.py").write_text(source, encoding="utf-8")
    assert not offences(tmp_path)


def test_the_import_jobs_forget_the_oldest_finished_first(tmp_path):
    from central.record import factory
    from central.settings import HubSettings

    class Job:
        def __init__(self, finished: bool) -> None:
            self.finished = finished

    jobs = factory.open_import_jobs(HubSettings(data_dir=str(tmp_path)))
    kept = {f"j{i}": Job(finished=i % 2 == 1) for i in range(50)}  # j1, j3, ... are finished
    for job_id, job in kept.items():
        jobs.add(job_id, job)
    assert len(jobs) == 50
    jobs.add("new", Job(finished=False))
    assert len(jobs) == 50 and jobs.get("j1") is None and jobs.get("j0") is kept["j0"]
    assert jobs.get("j3") is kept["j3"] and jobs.get("new") is not None
    assert jobs.jobs()[0] is kept["j0"] and jobs.jobs()[-1] is jobs.get("new")


def test_the_evidence_files_keep_within_their_quota(tmp_path):
    from central.record import factory
    from central.settings import EvidenceSettings, HubSettings

    settings = HubSettings(data_dir=str(tmp_path), evidence=EvidenceSettings(max_bytes=2500))
    files = factory.open_evidence(settings)
    assert files.cached(("SD-DZ-001", 1, 1, "scene")) is None
    files.keep(("SD-DZ-001", 1, 1, "scene"), b"\xff\xd8\xff" + b"a" * 997)
    files.keep(("SD-DZ-001", 1, 2, "plate"), b"\xff\xd8\xff" + b"b" * 997)
    assert files.cached(("SD-DZ-001", 1, 2, "plate")) == b"\xff\xd8\xff" + b"b" * 997
    first = tmp_path / "evidence" / "SD-DZ-001" / "1-1-scene.jpg"
    os.utime(first, (1, 1))  # the oldest by its time, whatever the clock's resolution
    files.keep(("SD-DZ-001", 1, 3, "scene"), b"\xff\xd8\xff" + b"c" * 997)
    assert files.cached(("SD-DZ-001", 1, 1, "scene")) is None  # over 2500 bytes: the oldest went
    assert files.cached(("SD-DZ-001", 1, 3, "scene")) is not None
    with pytest.raises(ValueError):
        files.cached(("../etc", 1, 1, "scene"))
