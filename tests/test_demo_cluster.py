"""`cordon demo --hubs 2 --store DSN`: two hub processes over a PostgreSQL database of the test's own
cluster, one Mosquitto, HAProxy in front; both hubs commit some of the simulated reads, the console
answers through the front door with a printed account, and Ctrl-C stops it all cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.support import free_port, get_health, next_frame, session, until
from tests.test_demo import read_banner

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]


async def test_the_cluster_demo_runs_two_hubs_behind_the_front_and_stops_cleanly(tmp_path, pg_dsn):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cordon",
            "demo",
            "--hubs",
            "2",
            "--store",
            pg_dsn,
            "--port",
            str(port),
            "--checkpoints",
            "2",
            "--vehicles-per-minute",
            "600",
            "--data",
            str(tmp_path / "demo"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        banner = read_banner(proc, timeout=150)
        console = re.search(r"command console: (http://\S+)/\s+access code: (\d{6})", banner)
        assert console, banner
        front = console.group(1)
        assert front.endswith(f":{port}") and "through HAProxy" in banner, banner
        hubs = re.findall(r"cordon-hub-\d: (http://\S+)/", banner)
        assert len(hubs) == 2 and front not in hubs, banner
        assert "(Mosquitto, started by the demo)" in banner
        commander = re.search(r"(demo-commander) / (\S+) / commander", banner)
        assert commander, banner
        async with session() as http:
            first = [(await get_health(http, f"{hub}/api/v1/health"))["reads_total"] for hub in hubs]

            async def each_took_some() -> bool:
                now = [(await get_health(http, f"{hub}/api/v1/health"))["reads_total"] for hub in hubs]
                return all(n >= f + 5 for n, f in zip(now, first, strict=True))

            await until(each_took_some, timeout=60, what="both hubs committing reads")
            # The console through the front door: the printed account signs in (whichever hub answers),
            # and its live feed carries the simulated traffic's alerts.
            await until(lambda: _answers(http, front), timeout=30, what="the front door answering")
            async with http.post(
                f"{front}/login", json={"username": commander.group(1), "password": commander.group(2)}
            ) as resp:
                assert resp.status == 200, "the printed demo account signs in through the front"
            ws = await http.ws_connect(f"{front}/api/v1/ws")
            frame = await next_frame(ws, "alert", timeout=90)
            assert frame["alert"]["hit"]["list_name"]
            await ws.close()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out[-3000:]
        assert "Cordon demo stopped." in out
        assert "Traceback" not in out, out[-3000:]
        for log in (tmp_path / "demo").glob("cordon-hub-*/hub.log"):
            assert "Traceback" not in log.read_text(errors="replace"), log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _answers(http, base) -> bool:
    async with http.get(f"{base}/api/v1/health") as resp:
        return resp.status == 200
