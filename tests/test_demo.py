"""`cordon demo` starts, produces reads and alerts, and stops cleanly on Ctrl-C; it sets up what the README
shows: every configured camera reads (none goes stale while the list says online) and its token is printed
for the camera push example, the simulated cameras send pictures, and a quick test can be saved."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.support import free_port, get_health, get_json, login, next_frame, session, until

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
            await _every_camera_reads_and_its_token_is_printed(http, banner, tablet.group(1))
            await _a_quick_test_is_saved(http, tablet.group(1))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out[-3000:]
        assert "Cordon demo stopped." in out
        assert "Traceback" not in out, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _every_camera_reads_and_its_token_is_printed(http, banner, base):
    """Each configured camera is one the simulator reads with (none stays silent and turns the checkpoint
    purple after five minutes), sends pictures, and its printed token works for a push."""
    printed = re.findall(r"cameras \(id / token\): (.+)", banner)
    assert len(printed) == 2, banner
    tokens = dict(pair.split(" / ") for pair in printed[0].split(" · "))
    status = await until(lambda: _all_cameras_read(http, base), timeout=30, what="every camera reading")
    assert set(status["cameras"]) == set(tokens), "the configured cameras are the simulated ones"
    assert status["evidence"]["reads"] > 0, "the simulated cameras send pictures"
    curl = re.search(r"curl -X POST (http://\S+) -H 'X-Camera-Token: (\S+)'", banner)
    assert curl and curl.group(1).startswith(base), banner
    camera = curl.group(1).split("/cameras/")[1].split("/")[0]
    assert tokens[camera] == curl.group(2)
    async with http.post(
        curl.group(1), json={"plate": "鲁A12345"}, headers={"X-Camera-Token": curl.group(2)}
    ) as resp:
        assert resp.status == 200, await resp.text()
    # a read the simulator made has its scene and plate pictures at the edge
    async with http.ws_connect(f"{base}/api/v1/ws") as tablet_ws:
        frame = await next_frame(tablet_ws, "evidence", timeout=30)
    assert {"snapshot", "plate", "thumb"} <= set(frame["kinds"])
    for kind in ("snapshot", "plate"):
        async with http.get(f"{base}/api/v1/evidence/{frame['seq']}/{kind}?epoch={frame['epoch']}") as resp:
            assert resp.status == 200 and resp.content_type == "image/jpeg"
            assert (await resp.read())[:3] == b"\xff\xd8\xff"


async def _all_cameras_read(http, base):
    status = await get_json(http, f"{base}/api/v1/status")
    cameras = status["cameras"]
    return status if cameras and all(c["reads"] > 0 and not c["stale"] for c in cameras.values()) else None


async def _a_quick_test_is_saved(http, base):
    """The README's quick-test flow works in the demo: the demo made kits.id_secret_file for hub and edges."""
    kit = (await get_json(http, f"{base}/api/v1/kits"))["kits"][0]
    now = time.time()
    body = {
        "id_number": "11010519491231002X",
        "kit_model": kit["model"],
        "lot": "L1",
        "expiry": "2099-12-31",
        "sample_type": kit["sample_type"],
        "sampled_at": now - 600,
        "read_at": now,
        "second_officer": "王警官 002",
        "panels": [{"drug": p["drug"], "officer_call": "negative"} for p in kit["panels"]],
    }
    async with http.post(f"{base}/api/v1/kits/results", json=body) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["result"] == "negative"


async def _reads(session, base):
    health = await get_health(session, f"{base}/api/v1/health")
    return health if health["reads_total"] > 10 else None


async def _mirrored(http, base):
    status = await get_json(http, f"{base}/api/v1/status")
    return status if status["feed"]["version"] >= 1 else None
