"""One exception tree (protocols/errors.py): the command line turns any CordonError into one line."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from cordon import cli
from cordon.cli import main
from cordon.testing import free_port, write_toml
from protocols.errors import ConfigError, CordonError

ROOT = Path(__file__).resolve().parent.parent
CODE = ("protocols", "runtime", "edge", "central", "cordon")
#: Exceptions that are signals between two pieces of code, never shown to anyone.
NOT_ERRORS = {
    "runtime.sqlwriter.NeedsPreparation",
    "central.record.postgresql.reads.DaysNotReady",
    "central.record.postgresql.store.InDoubt",
    "central.web.viid._Refused",
    "edge.sources.viid.Refused",
}


def _hub(tmp_path: Path, **sections: dict) -> subprocess.CompletedProcess[str]:
    """``cordon hub`` in its own process with these settings; no broker is needed to fail at start-up."""
    conf = write_toml(
        tmp_path / "hub.toml",
        {
            "data_dir": str(tmp_path / "data"),
            "http": {"host": "127.0.0.1", "port": free_port()},
            "mqtt": {"url": f"mqtt://127.0.0.1:{free_port()}"},
            **sections,
        },
    )
    return subprocess.run(
        [sys.executable, "-m", "cordon", "hub", "--config", str(conf)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The line ``cordon`` said on stderr (logging aside), checking there is exactly one and no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    said = [line for line in proc.stderr.splitlines() if line.startswith("cordon: ")]
    assert len(said) == 1, proc.stderr[-3000:]
    return said[0]


def test_a_bad_ring_file_stops_the_hub_with_one_line(tmp_path):
    ring = tmp_path / "ring.csv"
    ring.write_text("id,lat,lon\nSD-JN-001,north,117.0\n", encoding="utf-8")
    proc = _hub(tmp_path, console={"checkpoints_csv": str(ring)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_line(proc)
    assert str(ring) in line and "line 2" in line, line


def test_a_missing_clones_checkpoints_file_stops_the_hub_with_one_line(tmp_path):
    missing = tmp_path / "nowhere.csv"
    proc = _hub(tmp_path, clones={"checkpoints_csv": str(missing)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_line(proc)
    assert "clones.checkpoints_csv" in line and str(missing) in line, line


def test_a_bad_distances_file_names_its_key_and_line(tmp_path):
    distances = tmp_path / "km.csv"
    distances.write_text("from,to,km\nSD-JN-001,SD-JN-002,far\n", encoding="utf-8")
    proc = _hub(tmp_path, clones={"distances_csv": str(distances)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_line(proc)
    assert "clones.distances_csv" in line and "line 2" in line, line


@pytest.mark.parametrize(("error", "status"), [(CordonError, 1), (ConfigError, 2)])
def test_main_turns_any_cordon_error_into_one_line(monkeypatch, capfd, error, status):
    """The one handler in ``main``: whatever command raised it, a CordonError is a line and a status."""

    def fails(args):
        raise error("the thing went wrong")

    monkeypatch.setattr(cli, "cmd_audit", fails)  # the command is looked up when the parser is built
    assert main(["audit", "head", "--db", "x.db"]) == status
    err = capfd.readouterr().err
    assert "Traceback" not in err and "cordon: the thing went wrong" in err.splitlines(), err


def _error_classes() -> list[str]:
    """Every exception class defined in Cordon's code, by dotted name (found in the source, not imported)."""
    found = []
    for package in CODE:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "bench" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name)
                    and (b.id.endswith(("Error", "Exception")) or b.id in {"Exception"})
                    for b in node.bases
                ):
                    found.append(f"{module}.{node.name}")
    return found


def test_every_error_cordon_raises_descends_from_cordon_error():
    names = [n for n in _error_classes() if n not in NOT_ERRORS]
    assert "protocols.ring.RingError" in names  # the search finds what it should
    outside = []
    for name in names:
        module, _, cls = name.rpartition(".")
        if not issubclass(getattr(importlib.import_module(module), cls), CordonError):
            outside.append(name)
    assert not outside, f"errors outside the CordonError tree: {outside}"


@pytest.mark.parametrize(
    "name",
    [
        "runtime.config.SettingsError",
        "protocols.ring.RingError",
        "protocols.clones.GeographyError",
        "central.watchlists.index.WatchlistFileError",
    ],
)
def test_configuration_errors_are_on_the_configuration_branch(name):
    module, _, cls = name.rpartition(".")
    error = getattr(importlib.import_module(module), cls)
    assert issubclass(error, ConfigError) and issubclass(error, ValueError)  # old `except ValueError` holds
