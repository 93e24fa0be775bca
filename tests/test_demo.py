"""`cordon demo` starts, produces reads and alerts, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.support import free_port, get_json, login, next_frame, session, until

pytestmark = pytest.mark.system


def read_banner(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    text = ""
    deadline = time.monotonic() + timeout
    while "alerts show within a minute" not in text:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"demo did not start:\n{text}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            text += proc.stdout.readline()
    return text


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
async def test_demo_runs_and_stops_cleanly(tmp_path, broker, request):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
    extra = ["--broker", request.getfixturevalue("mosquitto").url] if broker == "mosquitto" else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cordon",
            "demo",
            "--port",
            str(port),
            "--checkpoints",
            "2",
            "--vehicles-per-minute",
            "600",
            "--data",
            str(tmp_path / "demo"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        banner = read_banner(proc)
        console = re.search(r"command console: (http://\S+)/\s+access code: (\d{6})", banner)
        assert console, banner
        base, code = console.group(1), console.group(2)
        assert base.endswith(f":{port}")
        assert len(re.findall(r"tablet: http://", banner)) == 2
        assert ("(embedded)" in banner) == (broker == "embedded")
        commander = re.search(r"(demo-commander) / (\S+) / commander", banner)
        assert commander and code, banner
        async with session() as http:
            async with http.post(
                f"{base}/login", json={"username": commander.group(1), "password": commander.group(2)}
            ) as resp:
                assert resp.status == 200, "the printed demo account signs in"
            ws = await http.ws_connect(f"{base}/api/v1/ws")
            frame = await next_frame(ws, "alert", timeout=90)
            assert frame["alert"]["hit"]["list_name"]
            health = await until(lambda: _reads(http, base), timeout=30, what="reads at the hub")
            tablet = re.search(r"tablet: (http://\S+)/\s+access code: (\d{6})", banner)
            await login(http, tablet.group(1), tablet.group(2))
            edge = await until(lambda: _mirrored(http, tablet.group(1)), timeout=30, what="edge mirror")
            assert edge["feed"]["entries"] == 7, "the demo's field feed, without its covert list"
            assert health["checkpoints_online"] == 2
            await ws.close()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out[-3000:]
        assert "Cordon demo stopped." in out
        assert "Traceback" not in out, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _reads(session, base):
    health = await get_json(session, f"{base}/api/v1/health")
    return health if health["reads_total"] > 10 else None


async def _mirrored(http, base):
    status = await get_json(http, f"{base}/api/v1/status")
    return status if status["feed"]["version"] >= 1 else None
