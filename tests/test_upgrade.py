"""An upgrade as docs/deploy.md does it, under load, from the previous release (commit aedf3f6, the edges in the
field) to this code: a hub and two edges of the previous release take camera reads; a backup first; the hub
is stopped and this release's hub starts on the same data (its migrations run, once); one edge is upgraded
too, so an edge of each release serves meanwhile; the cameras never stop. At the end every read a camera got
a 200 for is in the record exactly once, the outboxes are empty, nothing was dead-lettered, and the audit
chain verifies. The previous release runs from its own environment (cordon.testing.previous_release_python,
built once under ~/.cache/cordon-compat/)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from central.record.sqlite.schema import MIGRATIONS
from central.record.sqlite.store import RECORD_MIGRATION
from cordon.testing import ReleaseError, previous_release_python
from tests.support import (
    edge_service,
    get_health,
    get_json,
    hub_service,
    login,
    running,
    session,
    stored_camera_event_ids,
    until,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
LISTED = "鲁Q8K2L1"
CHECKPOINTS = ("SD-DZ-001", "SD-LY-001")


@pytest.fixture(scope="session")
def previous_python() -> str:
    try:
        return str(previous_release_python(ROOT))
    except ReleaseError as exc:
        pytest.fail(str(exc), pytrace=False)


def stored(data: Path) -> Counter[str]:
    try:
        return stored_camera_event_ids(data)
    except sqlite3.OperationalError:  # a day file made a moment ago
        return Counter()


async def test_upgrade_a_running_hub_from_the_previous_release_under_load(
    tmp_path, mosquitto, previous_python
):
    csv = tmp_path / "wl.csv"
    csv.write_text(f"plate,list,action,priority,reason\n{LISTED},drugs,intercept,90,test\n", encoding="utf-8")
    # Folding off (both releases know the key): every listed read raises its own alert, counted below.
    feed = {"feed": {"token": "feed-secret"}, "alerts": {"fold_window_s": 0}}
    old_hub = hub_service(
        tmp_path / "hub", mosquitto.url, watchlist_csv=csv, extra=feed, python=previous_python
    )
    hub_feed = {"hub": {"url": old_hub.base, "token": "feed-secret"}}
    edges = {
        cp: edge_service(
            tmp_path / cp, cp, mosquitto.url, cameras={"lane1": "cam"}, extra=hub_feed, python=previous_python
        )
        for cp in CHECKPOINTS
    }
    data = old_hub.workdir / "data"
    pushed: list[str] = []
    stop = asyncio.Event()

    async def camera(cp: str) -> None:
        async with session() as http:
            n = 0
            while not stop.is_set():
                n += 1
                plate = LISTED if n % 25 == 0 else f"鲁A{n % 100000:05d}"
                body = {"plate": plate, "event_id": f"{cp}-{n}", "confidence": 95}
                try:
                    async with http.post(
                        f"{edges[cp].base}/api/v1/cameras/lane1/reads",
                        json=body,
                        headers={"X-Camera-Token": "cam"},
                    ) as resp:
                        if resp.status == 200:
                            pushed.append(f"{cp}-{n}")
                except (OSError, aiohttp.ClientError):
                    pass  # the edge is being upgraded (refused, or cut mid-request): only 200s count
                await asyncio.sleep(0.02)

    new_hub = None
    with running(old_hub, *edges.values()):
        old_hub.start()
        for e in edges.values():
            e.start()
        load = [asyncio.create_task(camera(cp)) for cp in CHECKPOINTS]
        try:
            await until(lambda: len(stored(data)) > 100, timeout=90)
            # 1. A backup first (this release's command, against the previous release's running hub).
            backup = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "cordon", "backup", "--config", str(old_hub.workdir / "hub.toml"),
                 "--to", str(tmp_path / "backups")],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert backup.returncode == 0, backup.stderr
            # 2. The hub: stopped, this release started on the same data and configuration.
            assert old_hub.stop() == 0, old_hub.log()
            new_hub = old_hub
            new_hub.python = sys.executable
            new_hub.start()
            before = len(stored(data))
            await until(lambda: len(stored(data)) > before + 50, timeout=90)
            # 3. One edge upgraded; the other stays on the previous release. Both serve for a while.
            upgraded = edges["SD-LY-001"]
            assert upgraded.stop() == 0, upgraded.log()
            upgraded.python = sys.executable
            upgraded.start()
            before = len(stored(data))
            await until(lambda: len(stored(data)) > before + 100, timeout=90)
            await asyncio.sleep(5)
        finally:
            stop.set()
            await asyncio.gather(*load)
        # 4. Nothing lost, nothing doubled, outboxes empty, nothing dead-lettered, on both releases' edges.
        await until(lambda: set(pushed) <= set(stored(data)), timeout=120)
        async with session() as http:
            for e in edges.values():
                await login(http, e.base, "tablet-code")
                await until(lambda e=e: _outbox_empty(http, e.base), timeout=60)  # every event acknowledged
            await login(http, new_hub.base, "console-code")
            health = await get_health(http, f"{new_hub.base}/api/v1/health")
            assert health["status"] == "ok", health
    counts = stored(data)
    assert len(pushed) > 400 and set(counts) == set(pushed)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]
    with sqlite3.connect(data / "hub.db") as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
        # (the same plates at both checkpoints at once also raise clone alerts: those are not counted here)
        alerts = conn.execute("SELECT count(*) FROM alerts WHERE list_id = 'drugs'").fetchone()[0]
    assert sorted(versions) == sorted({*range(1, len(MIGRATIONS) + 1), RECORD_MIGRATION})  # each once
    assert alerts == sum(1 for k in pushed if int(k.rsplit("-", 1)[1]) % 25 == 0)
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cordon", "audit", "verify", "--data", str(data)],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"], verified.stdout


async def _outbox_empty(http, base: str) -> bool:
    status = await get_json(http, f"{base}/api/v1/status")
    return status["outbox"]["depth"] == 0
