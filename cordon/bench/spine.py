"""Alert latency along the idle spine: camera push -> edge -> Mosquitto -> hub -> console.

``run()`` starts its own Mosquitto, one ``cordon hub`` holding ``entries`` listed plates (loaded from a
CSV) and one ``cordon edge`` with a JSON push camera, all on loopback. It pushes ``hits`` reads of listed
plates one after another, each only once the previous one's alert has arrived, and times each from just
before its HTTP POST until the console WebSocket frame of the alert with that read's epoch and sequence
number arrives. The benchmark adds no other load, so this is the latency of the spine by itself;
``cordon bench e2e`` measures the same path under 500 background reads/s, with paced hits and a
1,000,000-entry watchlist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from cordon.bench.e2e import P99_BAR_MS
from cordon.testing import (
    LIST_ID,
    CordonProcess,
    Mosquitto,
    edge_process,
    get_json,
    http_session,
    login,
    make_plates,
    percentile_ms,
    start_hub,
    until,
)

CHECKPOINT = "SD-BENCH-001"
CAMERA_ID = "bench-cam"
EDGE_READY_TIMEOUT_S = 120.0
#: How long one read may take to reach the console before it counts as missing.
ALERT_TIMEOUT_S = 10.0

_started = time.monotonic()


def _say(message: str) -> None:
    print(f"[bench spine {time.monotonic() - _started:7.1f} s] {message}", file=sys.stderr, flush=True)


async def _edge_ready(http: aiohttp.ClientSession, edge: CordonProcess) -> bool:
    status = await get_json(http, f"{edge.base}/api/v1/status")
    return bool(status["uplink"]["state"] == "connected" and status["uplink"]["hub_online"] is True)


async def _hits(
    hub: CordonProcess, edge: CordonProcess, console: str, camera_token: str, plates: list[str], hits: int
) -> dict[str, Any]:
    arrived: dict[tuple[int, int], tuple[float, dict[str, Any]]] = {}
    news = asyncio.Event()
    latencies: list[float] = []
    missing: list[str] = []
    wrong_list: list[str] = []
    async with http_session() as http, http_session() as camera:
        await login(http, hub.base, console)
        ws = await http.ws_connect(f"{hub.base}/api/v1/ws", heartbeat=None, max_msg_size=0)

        async def listen() -> None:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.perf_counter()  # stamped on arrival: the alert may beat the camera's 200
                frame = json.loads(msg.data)
                alert = frame.get("alert") if frame.get("type") == "alert" else None
                if alert is not None and alert["checkpoint"] == CHECKPOINT:
                    arrived[(alert["epoch"], alert["seq"])] = (now, alert)
                    news.set()

        listener = asyncio.create_task(listen())
        try:
            for i in range(hits):
                plate = plates[i % len(plates)]
                event_id = f"spine:{i}"
                started = time.perf_counter()
                async with camera.post(
                    f"{edge.base}/api/v1/cameras/{CAMERA_ID}/reads",
                    headers={"X-Camera-Token": camera_token},
                    json={"plate": plate, "event_id": event_id, "captured_at": time.time()},
                ) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"push {event_id}: {resp.status} {await resp.text()}")
                    answer = await resp.json()
                key = (answer["epoch"], answer["seq"])
                deadline = time.monotonic() + ALERT_TIMEOUT_S
                while key not in arrived and time.monotonic() < deadline:
                    news.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(news.wait(), deadline - time.monotonic())
                if key not in arrived:
                    missing.append(event_id)
                    continue
                at, alert = arrived[key]
                latencies.append(at - started)
                if alert["hit"]["list_id"] != LIST_ID:
                    wrong_list.append(event_id)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await ws.close()
    return {
        "alert_latency_ms": {
            "p50": percentile_ms(latencies, 50),
            "p99": percentile_ms(latencies, 99),
            "max": round(max(latencies) * 1000, 1) if latencies else None,
            "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            "first": round(latencies[0] * 1000, 1) if latencies else None,
            "count": len(latencies),
        },
        "alerts_missing": len(missing),
        "alerts_missing_examples": missing[:10],
        "alerts_on_another_list": len(wrong_list),
    }


async def _run(hits: int, entries: int, seed: int, keep: str | None) -> dict[str, Any]:
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="cordon-bench-spine-"))
    base.mkdir(parents=True, exist_ok=True)
    _say(f"working in {base}")
    result: dict[str, Any] = {}
    errors: list[str] = []
    stop_later: list[Any] = []
    try:
        plates = make_plates(entries, seed)
        broker = Mosquitto(base / "mqtt")
        stop_later.append(broker)
        await broker.start().ready()
        console, feed_token, tablet, camera_token = (secrets.token_urlsafe(12) for _ in range(4))
        hub, loaded = await start_hub(base / "hub", broker, plates, console, feed_token, _say)
        stop_later.append(hub)
        result["hub_load_s"] = loaded["hub_load_s"]
        edge = edge_process(
            base / "edge",
            CHECKPOINT,
            broker.url,
            hub_url=hub.base,
            feed_token=feed_token,
            tablet_token=tablet,
            cameras={CAMERA_ID: camera_token},
        )
        stop_later.append(edge)
        edge.start()
        await edge.wait_listening(EDGE_READY_TIMEOUT_S)
        async with http_session() as http:
            await login(http, edge.base, tablet)
            await until(
                lambda: _edge_ready(http, edge),
                EDGE_READY_TIMEOUT_S,
                "the edge's uplink to connect and see the hub online",
                interval=0.1,
            )
        _say(f"edge connected; pushing {hits} listed reads one after another")
        try:
            result.update(await _hits(hub, edge, console, camera_token, plates, hits))
        except Exception as exc:
            errors.append(f"hits: {type(exc).__name__}: {exc}"[:2000])
            _say(errors[-1])
        latency = result.get("alert_latency_ms") or {}
        _say(f"alert latency p50 {latency.get('p50')} ms, p99 {latency.get('p99')} ms")
    finally:
        for item in reversed(stop_later):
            try:
                item.stop()
            except Exception as exc:  # keep stopping the rest
                errors.append(f"cleanup: {exc!r}")
        if not keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    result["errors"] = errors
    return result


def run(hits: int = 100, *, entries: int = 1000, seed: int = 11, keep: str | None = None) -> dict[str, Any]:
    """Push ``hits`` listed reads one at a time and time each to its console alert (see the module doc)."""
    global _started
    _started = time.monotonic()
    m = asyncio.run(_run(hits, entries, seed, keep))
    latency = m.get("alert_latency_ms") or {}
    bars = {
        "alert_p99_ms_le_100": latency.get("p99") is not None and latency["p99"] <= P99_BAR_MS,
        "every_hit_alerted": not m["errors"]
        and latency.get("count") == hits
        and m.get("alerts_missing") == 0
        and m.get("alerts_on_another_list") == 0,
    }
    return {
        "alert_latency_ms": latency or None,
        "bars": bars,
        "pass": all(bars.values()),
        "parameters": {"hits": hits, "watchlist_entries": entries, "seed": seed},
        **{k: v for k, v in m.items() if k not in {"alert_latency_ms", "errors"}},
        "errors": m["errors"],
        "total_s": round(time.monotonic() - _started, 1),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "note": (
            "Everything runs on this one machine: Mosquitto, the hub, one edge and the benchmark. "
            "alert_latency_ms: from just before the camera's HTTP POST to a real `cordon edge` until the "
            "hub console's WebSocket frame of the alert for that read (matched by epoch and sequence "
            "number, stamped when it arrives), one read at a time, no background load (whatever else runs on "
            "the host still shares its CPUs: cpus_usable); `first` is the first read's. The bar is the one "
            "`cordon bench e2e` sets for the same path under load."
        ),
    }
