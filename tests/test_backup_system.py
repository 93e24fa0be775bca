"""``cordon backup`` of a running hub under load (real Mosquitto, hub and edge processes, a camera pushing
reads of listed and unlisted plates), restored elsewhere: the counts match the backup's, every alert of the
restored hub.db has its read in the restored day files (one cut across the files), every read restored is
one the live hub has, and the audit chain verifies against the head recorded beside the backup."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from central.record.sqlite.dayfiles import SqliteReadStore
from tests.support import edge_service, hub_service, login, running, session, stored_camera_event_ids, until

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

LISTED = "鲁Q8K2L1"


def cordon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cordon", *args], capture_output=True, text=True, timeout=120
    )


def stored(data: Path) -> set[str]:
    try:
        return set(stored_camera_event_ids(data))
    except sqlite3.OperationalError:  # a day file made a moment ago, its tables not committed yet
        return set()


def alert_reads(data: Path) -> tuple[int, set[tuple[str, int, int]]]:
    with sqlite3.connect(data / "hub.db") as conn:
        rows = conn.execute("SELECT checkpoint, epoch, seq FROM alerts").fetchall()
    return len(rows), {(c, e, s) for c, e, s in rows}


def read_identities(data: Path, plate: str | None = None) -> set[tuple[str, int, int]]:
    record = SqliteReadStore(data / "record")
    return {
        (r.checkpoint, r.epoch, r.seq)
        for day in record.days()
        for r in record.iter_reads(day)
        if plate is None or r.plate == plate
    }


async def test_backup_under_load_restores_elsewhere_whole_and_consistent(tmp_path, mosquitto):
    csv = tmp_path / "wl.csv"
    csv.write_text(f"plate,list,action,priority\n{LISTED},drugs,intercept,90\n", encoding="utf-8")
    # Folding off: every read of the listed plate raises its own alert, so the backup cuts through many.
    hub = hub_service(
        tmp_path / "hub", mosquitto.url, watchlist_csv=csv, extra={"alerts": {"fold_window_s": 0}}
    )
    edge = edge_service(tmp_path / "edge", "SD-DZ-001", mosquitto.url, cameras={"lane1": "cam-token"})
    pushed: list[str] = []
    with running(hub, edge):
        hub.start()
        edge.start()
        stop = asyncio.Event()

        async def camera() -> None:
            async with session() as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    plate = LISTED if n % 10 == 0 else f"鲁A{n % 100000:05d}"
                    body = {"plate": plate, "event_id": f"ev-{n}", "confidence": 95}
                    async with http.post(
                        f"{edge.base}/api/v1/cameras/lane1/reads",
                        json=body,
                        headers={"X-Camera-Token": "cam-token"},
                    ) as resp:
                        if resp.status == 200:
                            pushed.append(f"ev-{n}")
                    await asyncio.sleep(0.01)

        load = asyncio.create_task(camera())
        async with session() as http:
            await login(http, hub.base, "console-code")  # an audit record while the load runs
            await until(lambda: len(stored(hub.workdir / "data")) > 100, timeout=60)
            taken = await asyncio.to_thread(
                cordon, "backup", "--config", str(hub.workdir / "hub.toml"), "--to", str(tmp_path / "backups")
            )
            await login(http, hub.base, "console-code")
        await asyncio.sleep(1.5)
        stop.set()
        await load
        assert taken.returncode == 0, taken.stderr
        summary = json.loads(taken.stdout)
        await until(lambda: set(pushed) <= stored(hub.workdir / "data"), timeout=60)
        live_reads = read_identities(hub.workdir / "data")

    assert len(pushed) > summary["counts"]["reads"] > 100, "the load went on after the backup"
    assert summary["counts"]["alerts"] > 5
    restored_dir = tmp_path / "elsewhere" / "hub"
    done = cordon("restore", summary["backup"], "--data", str(restored_dir))
    assert done.returncode == 0, done.stderr
    restored = json.loads(done.stdout)
    assert restored["audit"]["ok"] and restored["audit"]["records"] == summary["counts"]["audit_records"] >= 1

    reads = read_identities(restored_dir)
    alerts, alerted = alert_reads(restored_dir)
    assert len(reads) == summary["counts"]["reads"] and alerts == summary["counts"]["alerts"]
    # One cut across the files: a listed read is in the day files exactly when its alert is in hub.db.
    assert alerted == read_identities(restored_dir, LISTED) and len(alerted) == alerts
    assert reads <= live_reads
    # The writer's pause, as the backup measured it, is what ingest stalled for.
    assert 0 <= summary["writer_paused_ms"] < 1000
    print(
        f"writer paused {summary['writer_paused_ms']} ms for a backup of {summary['bytes']} bytes, {time.time():.0f}"
    )
