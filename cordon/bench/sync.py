"""Watchlist sync at scale: a big field feed reaching a fresh edge, and deltas reaching many edges.

``run()`` starts real parts on loopback (its own Mosquitto, ``cordon hub`` processes, a ``cordon
edge`` process, and in-process edge apps built by ``edge.app.create_app``) and measures two things:

* snapshot: a hub loaded with ``snapshot_entries`` plates (through ``[watchlists] csv``), then a
  fresh edge process; the clock starts when the edge process is started (so it includes process
  start-up, the MQTT connect, the retained feed version, the HTTP snapshot fetch, the mirror's
  SQLite write and the index build) and stops when a plate check on that edge finds a listed plate.
* deltas: a second hub with ``feed_entries`` plates and ``edges`` edge apps in this process (each
  with its own broker connection, mirror file and FeedSync, no HTTP site); ``additions`` entries
  are added one after another through the hub's API, and each (edge, addition) pair is timed from
  just before the API call until that edge's ``Mirror.match`` returns the new entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from cordon.testing import (
    LIST_ID,
    Mosquitto,
    edge_process,
    get_json,
    http_session,
    log_time,
    login,
    make_plates,
    percentile_ms,
    rss_mb,
    start_hub,
    until,
)

CAMERA_ID = "bench-cam"
SNAPSHOT_BAR_S = 30.0
DELTA_BAR_MS = 1000.0
DELTA_TIMEOUT_S = 5.0
SNAPSHOT_TIMEOUT_S = 300.0
EDGES_READY_TIMEOUT_S = 420.0

_started = time.monotonic()


def _say(message: str) -> None:
    print(f"[bench sync {time.monotonic() - _started:7.1f} s] {message}", file=sys.stderr, flush=True)


# -- phase 1: a big snapshot to a fresh edge ---------------------------------------------------


async def snapshot_phase(workdir: Path, entries: int, seed: int, stop_later: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"snapshot_entries": entries}
    t = time.monotonic()
    plates = make_plates(entries, seed)
    _say(f"{entries} plates generated in {time.monotonic() - t:.1f} s")
    broker = Mosquitto(workdir / "mqtt")
    stop_later.append(broker)
    await broker.start().ready()
    console, feed_token, tablet, camera_token = (
        "console-bench",
        secrets.token_urlsafe(16),
        "tablet-bench",
        "cam-t",
    )
    hub, loaded = await start_hub(workdir / "hub", broker, plates, console, feed_token, _say)
    stop_later.append(hub)
    out["hub_load_s"] = loaded["hub_load_s"]
    version = loaded["version"]
    target = plates[len(plates) // 2]
    target_id = f"{LIST_ID}:{target}"

    edge = edge_process(
        workdir / "edge",
        "SD-BENCH-SNAP",
        broker.url,
        hub_url=hub.base,
        feed_token=feed_token,
        tablet_token=tablet,
        cameras={CAMERA_ID: camera_token},
    )
    stop_later.append(edge)
    async with http_session(timeout=SNAPSHOT_TIMEOUT_S) as http:
        _say("starting a fresh edge process (the snapshot clock starts now)")
        edge.start()
        t0 = edge.started_mono
        await edge.wait_listening(60)
        await login(http, edge.base, tablet)
        async with http.get(f"{edge.base}/api/v1/check", params={"plate": target}) as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else None
        has_check = isinstance(body, dict) and "hits" in body
        mirror_at: float | None = None
        if has_check:
            out["snapshot_method"] = "GET /api/v1/check on the edge"

            async def found() -> bool:
                async with http.get(f"{edge.base}/api/v1/check", params={"plate": target}) as resp:
                    data = await resp.json(content_type=None)
                return any(
                    h.get("entry_id") == target_id or h.get("entry_plate") == target
                    for h in data.get("hits") or []
                )

            await until(found, SNAPSHOT_TIMEOUT_S, "the edge's check to find a listed plate")
            snapshot_s = time.monotonic() - t0
        else:
            out["snapshot_method"] = "status feed.version, then camera read + tablet WebSocket alert"
            ws = await http.ws_connect(f"{edge.base}/api/v1/ws")
            try:

                async def mirrored() -> bool:
                    status = await get_json(http, f"{edge.base}/api/v1/status")
                    return bool(status["feed"]["version"] >= version and status["feed"]["entries"] > 0)

                await until(mirrored, SNAPSHOT_TIMEOUT_S, "the edge's mirror to reach the hub's version")
                mirror_at = time.monotonic() - t0
                async with http.post(
                    f"{edge.base}/api/v1/cameras/{CAMERA_ID}/reads",
                    headers={"X-Camera-Token": camera_token},
                    json={"plate": target, "event_id": "bench-snapshot-1"},
                ) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"camera push: {resp.status} {await resp.text()}")
                deadline = time.monotonic() + 30
                while True:
                    msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise RuntimeError(f"tablet live feed closed ({msg.type})")
                    frame = json.loads(msg.data)
                    if frame.get("type") == "alert" and frame["alert"]["hit"]["entry_plate"] == target:
                        break
                snapshot_s = time.monotonic() - t0
            finally:
                await ws.close()
        out["snapshot_s"] = round(snapshot_s, 2)
        if mirror_at is not None:
            out["snapshot_mirror_at_version_s"] = round(mirror_at, 2)
        _say(f"fresh edge found a listed plate {snapshot_s:.2f} s after its process was started")
        status = await get_json(http, f"{edge.base}/api/v1/status")
        out["snapshot_edge_entries"] = status["feed"]["entries"]
        out["snapshot_edge_snapshots"] = status["feed"]["snapshots"]
        out["snapshot_edge_rss_mb"] = edge.rss_mb()
        out["snapshot_hub_rss_mb"] = hub.rss_mb()

    text = edge.log_text()
    started = log_time(text, "outbox epoch")
    applied = log_time(text, "feed snapshot applied")
    out["snapshot_fetch_s"] = round(applied - started, 3) if started and applied else None
    out["snapshot_edge_startup_s"] = round(started - edge.started_wall, 3) if started else None
    edge.stop()

    # Diagnostics, after the clock: how long the hub takes to serve the snapshot, and its size.
    async with http_session(timeout=SNAPSHOT_TIMEOUT_S) as http:
        t = time.monotonic()
        async with http.get(
            f"{hub.base}/api/v1/feed/snapshot", headers={"Authorization": f"Bearer {feed_token}"}
        ) as resp:
            body_len = len(await resp.read())
        out["hub_snapshot_serve_s"] = round(time.monotonic() - t, 2)
        out["snapshot_bytes"] = body_len
    hub.stop()
    broker.stop()
    return out


# -- phase 2: deltas to many in-process edges --------------------------------------------------


class LoopMonitor:
    """How late the benchmark's event loop runs a 10 ms timer, and the garbage collector's long pauses."""

    TICK_S = 0.01

    def __init__(self) -> None:
        self.max_lag = 0.0
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif (pause := time.perf_counter() - self._gc_started) > 0.05:
            self.gc_pauses.append(pause)

    async def _tick(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.TICK_S)
            self.max_lag = max(self.max_lag, time.monotonic() - t - self.TICK_S)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class DeltaProbe:
    """Observes every edge's mirror right after it applied a delta or a snapshot."""

    def __init__(self, edges: int) -> None:
        self.edges = edges
        self.plate: str | None = None
        self.entry_id = ""
        self.t0 = 0.0
        self.got: dict[int, float] = {}
        self.done = asyncio.Event()
        # what the edges' mirrors did, for diagnosis: apply_delta results, and snapshots that moved back
        self.results: dict[str, int] = {}
        self.highest: dict[int, int] = {}
        self.snapshot_events: list[dict[str, Any]] = []
        self.measuring = False
        self.apply_s: list[float] = []
        self.fetch_starts: list[dict[str, Any]] = []
        self.addition = -1

    def arm(self, plate: str, entry_id: str) -> None:
        self.plate, self.entry_id, self.got = plate, entry_id, {}
        self.done.clear()
        self.t0 = time.monotonic()

    def disarm(self) -> dict[int, float]:
        got, self.plate = self.got, None
        return got

    def attach(self, idx: int, mirror: Any) -> None:
        """Shadow the mirror's two update methods with observers (FeedSync looks them up per call)."""
        apply_delta, replace = mirror.apply_delta, mirror.replace

        async def observed_apply_delta(delta: Any) -> Any:
            started = time.monotonic()
            result = await apply_delta(delta)
            self.check(idx, mirror)
            if self.measuring:
                self.results[str(result)] = self.results.get(str(result), 0) + 1
                self.apply_s.append(time.monotonic() - started)
            self.highest[idx] = max(self.highest.get(idx, 0), mirror.version)
            return result

        async def observed_replace(snapshot: Any) -> bool:
            before = mirror.version
            installed = await replace(snapshot)
            self.check(idx, mirror)
            if self.measuring:
                self.snapshot_events.append(
                    {
                        "edge": idx,
                        "at_s": round(time.monotonic() - self.t0, 3),
                        "mirror_before": before,
                        "highest_before": self.highest.get(idx, 0),
                        "snapshot_version": snapshot.version,
                        "plate_pending": self.plate is not None,
                    }
                )
            self.highest[idx] = max(self.highest.get(idx, 0), mirror.version)
            return bool(installed)

        mirror.apply_delta = observed_apply_delta
        mirror.replace = observed_replace

    def attach_feed(self, idx: int, feed: Any) -> None:
        """Note the state of FeedSync whenever it decides to fetch a snapshot (diagnosis only)."""
        fetch = feed.fetch_snapshot

        async def observed_fetch() -> Any:
            if self.measuring:
                self.fetch_starts.append(
                    {
                        "edge": idx,
                        "at_s": round(time.monotonic() - self.t0, 3),
                        "addition": self.addition,
                        "mirror_version": feed.mirror.version,
                        "hub_version": feed.hub_version,
                        # private state, read for diagnosis only: is a delta being applied, when did one arrive
                        "delta_being_applied": getattr(
                            getattr(feed.mirror, "_lock", None), "locked", lambda: None
                        )(),
                        "since_last_delta_s": round(
                            time.monotonic() - getattr(feed, "_last_delta_at", 0.0), 3
                        ),
                    }
                )
            return await fetch()

        feed.fetch_snapshot = observed_fetch

    def check(self, idx: int, mirror: Any) -> None:
        if self.plate is None or idx in self.got:
            return
        hits = mirror.match(self.plate, now=time.time(), colour=None, vehicle_type=None)
        if any(h.entry_id == self.entry_id for h in hits):
            self.got[idx] = time.monotonic() - self.t0
            if len(self.got) == self.edges:
                self.done.set()


async def delta_phase(
    workdir: Path, edges: int, feed_entries: int, additions: int, seed: int, stop_later: list[Any]
) -> dict[str, Any]:
    from aiohttp import web

    from edge import keys as edge_keys
    from edge.app import create_app
    from edge.settings import EdgeSettings, TabletSettings
    from edge.settings import HubSettings as EdgeHub
    from edge.settings import MqttSettings as EdgeMqtt

    out: dict[str, Any] = {"edges": edges}
    plates = make_plates(feed_entries + additions, seed + 1)
    feed_plates, new_plates = plates[:feed_entries], plates[feed_entries:]
    broker = Mosquitto(workdir / "mqtt")
    stop_later.append(broker)
    await broker.start().ready()
    console, feed_token = "console-bench", secrets.token_urlsafe(16)
    hub, loaded = await start_hub(workdir / "hub", broker, feed_plates, console, feed_token, _say)
    stop_later.append(hub)
    out["feed_entries"] = loaded["entries"]
    out["feed_hub_load_s"] = loaded["hub_load_s"]

    probe = DeltaProbe(edges)
    apps: list[web.Application] = []
    runners: list[web.AppRunner] = []

    async def stop_edges() -> None:
        results = await asyncio.wait_for(
            asyncio.gather(*(r.cleanup() for r in runners), return_exceptions=True), timeout=120
        )
        for r in results:
            if isinstance(r, BaseException):
                _say(f"an edge did not stop cleanly: {r!r}")
        runners.clear()

    stop_later.append(stop_edges)
    t = time.monotonic()
    _say(f"starting {edges} edge apps in this process")
    for i in range(edges):
        cp = f"SD-BENCH-{i:03d}"
        settings = EdgeSettings(
            checkpoint=cp,
            data_dir=str(workdir / "edges" / cp),
            mqtt=EdgeMqtt(url=broker.url, reconnect_min_s=0.2, reconnect_max_s=1.0),
            hub=EdgeHub(url=hub.base, token=feed_token),
            tablet=TabletSettings(token=secrets.token_urlsafe(8)),
        )
        app = create_app(settings)
        probe.attach(i, app[edge_keys.MIRROR])
        probe.attach_feed(i, app[edge_keys.FEED])
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()  # starts the stores, FeedSync and the uplink; no HTTP site is needed
        apps.append(app)
        runners.append(runner)

    def ready() -> int:
        return sum(
            app[edge_keys.MIRROR].version >= loaded["version"] and len(app[edge_keys.MIRROR]) > 0
            for app in apps
        )

    async def all_ready() -> bool:
        return ready() == edges

    last_report = [0.0]

    async def all_ready_reporting() -> bool:
        if time.monotonic() - last_report[0] > 10:
            last_report[0] = time.monotonic()
            _say(f"{ready()}/{edges} edges hold the {feed_entries}-entry feed")
        return await all_ready()

    await until(all_ready_reporting, EDGES_READY_TIMEOUT_S, "every edge to mirror the feed", interval=0.1)
    out["edges_ready_s"] = round(time.monotonic() - t, 2)
    connected = sum(app[edge_keys.UPLINK].state.value == "connected" for app in apps)
    _say(f"{edges} edges hold the feed after {out['edges_ready_s']} s ({connected} uplinks connected)")
    snapshots_before = sum(app[edge_keys.FEED].snapshots for app in apps)
    deltas_before = sum(app[edge_keys.FEED].deltas for app in apps)

    probe.measuring = True
    monitor = LoopMonitor()
    monitor.start()
    latencies: list[float] = []
    api: list[float] = []
    missed = 0
    late_edges: dict[str, int] = {}
    slowest: list[tuple[float, int]] = []
    later: list[float] = []  # every pair but the first addition's (see the report: that one is slow)
    async with http_session() as http:
        await login(http, hub.base, console)
        for k, plate in enumerate(new_plates):
            entry_id = f"{LIST_ID}:{plate}"
            probe.addition = k
            probe.arm(plate, entry_id)  # the clock starts here, just before the API call
            async with http.post(
                f"{hub.base}/api/v1/watchlists/{LIST_ID}/entries", json={"plate": plate}
            ) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"adding an entry: {resp.status} {await resp.text()}")
                await resp.read()
            api.append(time.monotonic() - probe.t0)
            left = DELTA_TIMEOUT_S - (time.monotonic() - probe.t0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(probe.done.wait(), timeout=max(left, 0.001))
            got = probe.disarm()
            latencies.extend(got.values())
            if k > 0:
                later.extend(got.values())
            slowest.append((round(max(got.values(), default=float("nan")) * 1000, 1), k))
            if len(got) < edges:
                missed += edges - len(got)
                for i in range(edges):
                    if i not in got:
                        cp = f"SD-BENCH-{i:03d}"
                        late_edges[cp] = late_edges.get(cp, 0) + 1
            if (k + 1) % 10 == 0 or k + 1 == len(new_plates):
                _say(
                    f"{k + 1}/{len(new_plates)} additions; p50 {percentile_ms(latencies, 50)} ms, "
                    f"p99 {percentile_ms(latencies, 99)} ms, missed {missed}"
                )
    await monitor.stop()
    snapshots_after = sum(app[edge_keys.FEED].snapshots for app in apps)
    out.update(
        {
            "deltas": len(new_plates),
            "pairs": edges * len(new_plates),
            "delta_p50_ms": percentile_ms(latencies, 50),
            "delta_p90_ms": percentile_ms(latencies, 90),
            "delta_p99_ms": percentile_ms(latencies, 99),
            "delta_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
            "delta_p99_ms_without_first_addition": percentile_ms(later, 99),
            "missed": missed,
            "missed_by_edge": late_edges,
            "add_api_p50_ms": percentile_ms(api, 50),
            "add_api_p99_ms": percentile_ms(api, 99),
            "snapshots_taken_by_edges": snapshots_after,
            "snapshots_during_additions": snapshots_after - snapshots_before,
            "deltas_applied_by_edges": sum(app[edge_keys.FEED].deltas for app in apps) - deltas_before,
            "delta_results": probe.results,
            "slowest_additions": [
                {"addition": k, "max_ms": ms} for ms, k in sorted(slowest, reverse=True)[:5]
            ],
            "apply_delta_p99_ms": percentile_ms(probe.apply_s, 99),
            "apply_delta_max_ms": round(max(probe.apply_s) * 1000, 1) if probe.apply_s else None,
            "snapshots_moving_mirror_back": sum(
                e["snapshot_version"] < e["highest_before"] for e in probe.snapshot_events
            ),
            "snapshot_events_during_additions": probe.snapshot_events[:20],
            "snapshot_fetches_during_additions": probe.fetch_starts[:20],
            "loop_lag_max_ms": round(monitor.max_lag * 1000, 1),
            "gc_pauses_over_50ms": [round(x * 1000) for x in monitor.gc_pauses[:10]],
            "bench_process_rss_mb": rss_mb(),
            "feed_hub_rss_mb": hub.rss_mb(),
        }
    )
    await stop_edges()
    hub.stop()
    broker.stop()
    return out


# -- the whole run ---------------------------------------------------------------------------


async def _run(
    snapshot_entries: int, edges: int, feed_entries: int, additions: int, seed: int, keep: str | None
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    errors: list[str] = []
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="cordon-bench-sync-"))
    base.mkdir(parents=True, exist_ok=True)
    _say(f"working in {base}")
    stop_later: list[Any] = []
    edge_log = logging.getLogger("edge")
    old_level = edge_log.level
    edge_log.setLevel(logging.WARNING)  # 50 edges' start-up lines would drown the progress lines

    async def cleanup() -> None:
        for item in reversed(stop_later):
            try:
                if callable(item) and not hasattr(item, "stop"):
                    await item()
                else:
                    item.stop()
            except Exception as exc:  # keep stopping the rest
                errors.append(f"cleanup: {exc!r}")
        stop_later.clear()

    try:
        if snapshot_entries > 0:
            try:
                result.update(await snapshot_phase(base / "snapshot", snapshot_entries, seed, stop_later))
            except Exception as exc:
                errors.append(f"snapshot phase: {type(exc).__name__}: {exc}"[:2000])
                _say(errors[-1])
            finally:
                await cleanup()
        if edges > 0 and additions > 0:
            try:
                result.update(
                    await delta_phase(base / "deltas", edges, feed_entries, additions, seed, stop_later)
                )
            except Exception as exc:
                errors.append(f"delta phase: {type(exc).__name__}: {exc}"[:2000])
                _say(errors[-1])
            finally:
                await cleanup()
    finally:
        await cleanup()
        edge_log.setLevel(old_level)
        if not keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    result["errors"] = errors
    return result


def run(
    snapshot_entries: int = 1_000_000,
    edges: int = 50,
    feed_entries: int = 100_000,
    additions: int = 100,
    *,
    seed: int = 11,
    keep: str | None = None,
) -> dict[str, Any]:
    """Run both measurements (see the module doc) and return one JSON-ready dict."""
    global _started
    _started = time.monotonic()
    measured = asyncio.run(_run(snapshot_entries, edges, feed_entries, additions, seed, keep))
    snapshot_s, p99, missed = measured.get("snapshot_s"), measured.get("delta_p99_ms"), measured.get("missed")
    return {
        "snapshot_entries": snapshot_entries,
        "snapshot_s": snapshot_s,
        "snapshot_fetch_s": measured.pop("snapshot_fetch_s", None),
        "hub_load_s": measured.pop("hub_load_s", None),
        "edges": edges,
        "feed_entries": feed_entries,
        "delta_p50_ms": measured.pop("delta_p50_ms", None),
        "delta_p99_ms": p99,
        "deltas": measured.pop("deltas", 0),
        "missed": missed,
        "snapshots_taken_by_edges": measured.pop("snapshots_taken_by_edges", None),
        **{
            k: v
            for k, v in measured.items()
            if k
            not in {
                "snapshot_entries",
                "snapshot_s",
                "edges",
                "feed_entries",
                "delta_p99_ms",
                "missed",
                "errors",
            }
        },
        "bars": {
            "snapshot_s_le_30": snapshot_s is not None and snapshot_s <= SNAPSHOT_BAR_S,
            "delta_p99_ms_le_1000": p99 is not None and p99 <= DELTA_BAR_MS and missed == 0,
        },
        "errors": measured["errors"],
        "total_s": round(time.monotonic() - _started, 1),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "note": (
            "Everything on loopback with a Mosquitto of the benchmark's own. hub_load_s: from starting the hub "
            "process (CSV in [watchlists] csv) until its GET /api/v1/feed reports every entry (set-up, not the "
            "bar). snapshot_s: from starting a fresh `cordon edge` process (so it includes interpreter and app "
            "start-up, the MQTT connect and the retained feed version before the edge's GET /api/v1/feed/snapshot) "
            "until a check of a listed plate on that edge finds it (snapshot_method says how it was checked). "
            "snapshot_fetch_s: the edge's own log, 'outbox epoch' start-up line to 'feed snapshot applied' "
            "(millisecond log stamps). hub_snapshot_serve_s/snapshot_bytes: one more snapshot GET afterwards, "
            "for diagnosis. Deltas: the edges are edge.app.create_app apps in the benchmark process on one "
            "asyncio loop (own broker connection, mirror file, FeedSync; no HTTP site); each (edge, addition) "
            "pair is timed from just before the hub's POST /api/v1/watchlists/{list}/entries until that "
            "edge's Mirror.match(plate) returns the entry, checked right after each apply_delta/replace "
            "returns; additions are sequential, each waiting for every edge or 5 s (then counted in missed); "
            "percentiles are over the pairs that arrived (missed pairs are not in them). The first addition "
            "is each edge's first mirror write after its snapshot and is slower; "
            "delta_p99_ms_without_first_addition leaves it out. Diagnostics: delta_results (apply_delta "
            "outcomes), snapshots_during_additions, snapshots_moving_mirror_back (a snapshot installed older "
            "than the version the mirror had reached), snapshot_fetches_during_additions (FeedSync state when "
            "it chose to fetch), loop_lag_max_ms (the benchmark loop's worst lateness on a 10 ms timer)."
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--snapshot-entries", type=int, default=1_000_000)
    parser.add_argument("--edges", type=int, default=50)
    parser.add_argument("--feed-entries", type=int, default=100_000)
    parser.add_argument("--additions", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (logs, databases)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(
        args.snapshot_entries, args.edges, args.feed_entries, args.additions, seed=args.seed, keep=args.keep
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
