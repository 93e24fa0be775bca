"""Watchlist sync at scale: a big field feed reaching fresh edges, and deltas reaching many edges.

``run()`` starts real parts on loopback (its own Mosquitto, ``cordon hub`` processes, ``cordon
edge`` processes, and in-process edge apps built by ``edge.app.create_app``) and measures:

* snapshot: a hub whose store holds ``snapshot_entries`` entries of a realistic feed
  (``cordon.testing.realistic_feed``), then a fresh edge process; the clock starts when the edge
  process is started (process start-up, the MQTT connect, the retained feed version, the feed
  file's download, the mirror's write and the index build) and stops when a plate check on that
  edge finds a listed plate. The same edge then takes a new file over its full mirror (a bulk
  change), and restarts from its mirror file; its resident size and peak (VmHWM) are read with
  camera reads arriving and the kit reader loaded.
* thin line: another fresh edge fetching through a relay that throttles, delays, resets and
  refuses (``cordon.testing.ThinLine``) while entries are added on the hub every 2 s.
* serving: the hub's CPU time while 50 and 500 clients download the file over HTTPS.
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
    hub_process,
    login,
    make_plates,
    percentile_ms,
    rss_mb,
    start_hub,
    until,
)

CAMERA_ID = "bench-cam"
SNAPSHOT_BAR_S = 30.0
SNAPSHOT_BYTES_BAR = 20_000_000
EDGE_RSS_BAR_MB = 350.0
EDGE_PEAK_BAR_MB = 500.0
THIN_LINE_BAR_S = 60.0
HUB_SERVE_CPU_BAR_S = 5.0
DELTA_BAR_MS = 1000.0
DELTA_TIMEOUT_S = 5.0
SNAPSHOT_TIMEOUT_S = 300.0
#: The list the big-difference replace swaps for other plates, and how many (percent of the feed).
BIG_LIST_ID = "bench-notify"
BIG_REPLACE_PERCENT = 15
EDGES_READY_TIMEOUT_S = 420.0

_started = time.monotonic()


def _say(message: str) -> None:
    print(f"[bench sync {time.monotonic() - _started:7.1f} s] {message}", file=sys.stderr, flush=True)


# -- phase 1: a big snapshot to a fresh edge ---------------------------------------------------


class CameraFeed:
    """Camera reads pushed to the live edges all along (listed and unlisted plates, ~10 a second),
    so memory is measured on an edge that is working."""

    EVERY_S = 0.1

    def __init__(self, plates: Sequence[str]) -> None:
        self.plates = list(plates)
        self.edges: list[Any] = []
        self.sent = 0
        self.failed = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        import random

        rng = random.Random(5)
        async with http_session() as http:
            while True:
                await asyncio.sleep(self.EVERY_S)
                for edge in list(self.edges):
                    plate = (
                        rng.choice(self.plates) if rng.random() < 0.3 else f"鲁Z{rng.randrange(10**5):05d}"
                    )
                    try:
                        async with http.post(
                            f"{edge.base}/api/v1/cameras/{CAMERA_ID}/reads",
                            headers={"X-Camera-Token": CAMERA_TOKEN},
                            json={"plate": plate, "event_id": f"feed-{self.sent}"},
                        ) as resp:
                            await resp.read()
                            self.sent += resp.status == 200
                            self.failed += resp.status != 200
                    except (aiohttp.ClientError, TimeoutError):
                        self.failed += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


CAMERA_TOKEN = "cam-t"
TABLET = "tablet-bench"
THIN_RATE_BPS = 10_000_000
THIN_BURST = 64 * 1024
THIN_DELAY_S = 0.1
THIN_REFUSE_S = 5.0
DELTA_EVERY_S = 2.0


async def load_kit_reader(http: aiohttp.ClientSession, base: str) -> bool:
    """One cassette photo through the edge's reader, so its image code is loaded as in service."""
    import random

    from edge.kits.catalogue import SHIPPED_CATALOGUE, load_catalogue
    from edge.kits.synth import make_photo, random_conditions, random_panels

    kit = load_catalogue(SHIPPED_CATALOGUE).kits[0]
    rng = random.Random(3)
    photo = await asyncio.to_thread(
        make_photo, kit, rng, random_panels(rng, kit), random_conditions(rng, kit)
    )
    form = aiohttp.FormData()
    form.add_field("photo", photo.data, filename="kit.jpg", content_type="image/jpeg")
    async with http.post(f"{base}/api/v1/kits/read", params={"kit": kit.model}, data=form) as resp:
        await resp.read()
        return resp.status in (200, 400)  # 400: a photo the reader declined, after loading all it needs


async def feed_file_ready(
    http: aiohttp.ClientSession, hub: Any, token: str, version: int
) -> dict[str, Any] | None:
    async with http.get(
        f"{hub.base}/api/v1/feed/file", headers={"Authorization": f"Bearer {token}", "Range": "bytes=0-0"}
    ) as resp:
        await resp.read()
        if resp.status != 206 or int(resp.headers.get("X-Cordon-Feed-Version", "-1")) < version:
            return None
        return {
            "version": int(resp.headers["X-Cordon-Feed-Version"]),
            "bytes": int(resp.headers["Content-Range"].rsplit("/", 1)[1]),
            "etag": resp.headers["ETag"],
        }


async def edge_finds(http: aiohttp.ClientSession, edge: Any, plate: str, entry_id: str) -> bool:
    try:
        async with http.get(f"{edge.base}/api/v1/check", params={"plate": plate}) as resp:
            if resp.status != 200:
                return False
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError):
        return False
    return any(h.get("entry_id") == entry_id for h in data.get("hits") or [])


async def snapshot_phase(workdir: Path, entries: int, seed: int, stop_later: list[Any]) -> dict[str, Any]:
    """The realistic feed to fresh edges: on loopback, then through a thin line; the edge's memory."""
    from cordon.testing import ThinLine, realistic_feed, seed_hub

    out: dict[str, Any] = {"snapshot_entries": entries}
    t = time.monotonic()
    lists, feed = realistic_feed(entries, seed)
    plain = [e for e in feed if e.list_id == LIST_ID and "*" not in e.plate and "?" not in e.plate]
    target = plain[len(plain) // 2]
    listed_sample = [e.plate for e in plain[:: max(1, len(plain) // 1000)]]
    notify_entries = sum(1 for e in feed if e.list_id == BIG_LIST_ID)
    _say(f"{entries} realistic entries generated in {time.monotonic() - t:.1f} s")
    t = time.monotonic()
    version = await asyncio.to_thread(seed_hub, workdir / "hub" / "data", lists, feed)
    del feed, plain
    gc.collect()
    _say(f"hub store seeded in {time.monotonic() - t:.1f} s (feed version {version})")
    broker = Mosquitto(workdir / "mqtt")
    stop_later.append(broker)
    await broker.start().ready()
    console, token = "console-bench", secrets.token_urlsafe(16)
    hub = hub_process(workdir / "hub", broker.url, console_token=console, feed_token=token, csv_files=[])
    stop_later.append(hub)
    hub.start()
    await hub.wait_listening(SNAPSHOT_TIMEOUT_S)
    cameras = CameraFeed(listed_sample)
    cameras.start()
    stop_later.append(cameras.stop)
    # two sessions: the hub's and the edges' cookies share a host (and a cookie name)
    async with http_session(timeout=SNAPSHOT_TIMEOUT_S) as http, http_session(timeout=60) as eh:
        await login(http, hub.base, console)
        await until(
            lambda: get_json(http, f"{hub.base}/api/v1/feed"),
            SNAPSHOT_TIMEOUT_S,
            "the hub to answer",
        )
        made = await until(
            lambda: feed_file_ready(http, hub, token, version), SNAPSHOT_TIMEOUT_S, "the hub's feed file"
        )
        out["hub_load_s"] = round(time.monotonic() - hub.started_mono, 2)
        out["snapshot_bytes"] = made["bytes"]
        _say(f"hub ready with a {made['bytes']} byte feed file after {out['hub_load_s']} s")

        # 1. a fresh edge on loopback: snapshot_s, then its steady and peak memory
        edge = edge_process(
            workdir / "edge",
            "SD-BENCH-SNAP",
            broker.url,
            hub_url=hub.base,
            feed_token=token,
            tablet_token=TABLET,
            cameras={CAMERA_ID: CAMERA_TOKEN},
        )
        stop_later.append(edge)
        _say("starting a fresh edge process (the snapshot clock starts now)")
        edge.start()
        await edge.wait_listening(60)
        await login(eh, edge.base, TABLET)
        cameras.edges.append(edge)
        out["kit_reader_loaded"] = await load_kit_reader(eh, edge.base)
        await until(
            lambda: edge_finds(eh, edge, target.plate, target.entry_id),
            SNAPSHOT_TIMEOUT_S,
            "the fresh edge to match a listed plate",
            interval=0.1,
        )
        out["snapshot_s"] = round(time.monotonic() - edge.started_mono, 2)
        out["edge_peak_rss_mb_fresh"] = edge.rss_mb("VmHWM")
        _say(f"fresh edge matched a listed plate {out['snapshot_s']} s after its process was started")
        await asyncio.sleep(10)  # steady state: cameras feeding, the reader loaded
        out["edge_rss_mb"] = edge.rss_mb()
        status = await get_json(eh, f"{edge.base}/api/v1/status")
        out["snapshot_edge_entries"] = status["feed"]["entries"]

        # 2. a new file replacing the full mirror: a bulk change on the hub (no delta can carry it)
        bulk = "plate,reason\n" + "".join(f"皖Q{i:05d},bulk\n" for i in range(2000))
        async with http.post(
            f"{hub.base}/api/v1/watchlists/bench-notify/import",
            params={"mode": "merge"},
            data=bulk.encode(),
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"bulk import: {resp.status} {body}")
        bulk_version = body.get("feed_version") or body.get("result", {}).get("feed_version")
        t = time.monotonic()
        await until(
            lambda: edge_finds(eh, edge, "皖Q01999", "bench-notify:皖Q01999"),
            SNAPSHOT_TIMEOUT_S,
            "the edge to take the new file after a bulk change",
            interval=0.2,
        )
        out["replace_full_mirror_s"] = round(time.monotonic() - t, 2)
        out["bulk_version"] = bulk_version
        out["edge_peak_rss_mb_replace"] = edge.rss_mb("VmHWM")
        _say(f"the edge took the new file over its full mirror in {out['replace_full_mirror_s']} s")

        # 2b. a new file with a big difference: a list of about a fifth of the feed replaced by
        # as many other plates (a third of the mirror differs), which the edge takes in place;
        # its peak from here on alone (VmHWM reset first), the earlier ones are kept above
        big = max(1, entries * BIG_REPLACE_PERCENT // 100)
        fresh = [f"豫{'DEFGHJKLMN'[i // 100_000 % 10]}{i % 100_000:05d}" for i in range(big)]
        t = time.monotonic()
        async with http.post(
            f"{hub.base}/api/v1/watchlists/{BIG_LIST_ID}/import",
            params={"mode": "replace"},
            data=("plate,reason\n" + "".join(f"{p},big\n" for p in fresh)).encode(),
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"big import: {resp.status} {body}")
        out["replace_big_hub_import_s"] = round(time.monotonic() - t, 2)
        out["replace_big_difference"] = notify_entries + 2000 + big
        reset_peak = edge.reset_peak()
        t = time.monotonic()
        await until(
            lambda: edge_finds(eh, edge, fresh[-1], f"{BIG_LIST_ID}:{fresh[-1]}"),
            SNAPSHOT_TIMEOUT_S,
            "the edge to take a new file with a big difference",
            interval=0.2,
        )
        out["replace_big_s"] = round(time.monotonic() - t, 2)
        out["edge_peak_rss_mb_replace_big"] = edge.rss_mb("VmHWM") if reset_peak else None
        out["edge_rss_mb_after_replace_big"] = edge.rss_mb()
        _say(
            f"the edge took a file differing in {out['replace_big_difference']} entries in "
            f"{out['replace_big_s']} s (peak {out['edge_peak_rss_mb_replace_big']} MB)"
        )

        # 3. a restart from the mirror file
        cameras.edges.remove(edge)
        edge.stop()
        edge.start()
        await edge.wait_listening(120)
        await login(eh, edge.base, TABLET)
        cameras.edges.append(edge)
        await load_kit_reader(eh, edge.base)
        await until(
            lambda: edge_finds(eh, edge, target.plate, target.entry_id),
            SNAPSHOT_TIMEOUT_S,
            "the restarted edge to match from its mirror",
            interval=0.1,
        )
        out["restart_match_s"] = round(time.monotonic() - edge.started_mono, 2)
        await asyncio.sleep(5)
        out["edge_peak_rss_mb_restart"] = edge.rss_mb("VmHWM")
        out["edge_rss_mb_after_restart"] = edge.rss_mb()
        status = await get_json(eh, f"{edge.base}/api/v1/status")
        out["restart_snapshots"] = status["feed"]["snapshots"]
        cameras.edges.remove(edge)
        edge.stop()
        peaks = [
            out[k]
            for k in (
                "edge_peak_rss_mb_fresh",
                "edge_peak_rss_mb_replace",
                "edge_peak_rss_mb_replace_big",
                "edge_peak_rss_mb_restart",
            )
        ]
        out["edge_peak_rss_mb"] = max((p for p in peaks if p is not None), default=None)

        # 4. a thin line: a fresh edge fetching through the relay, with a delta every 2 s meanwhile
        current = await until(
            lambda: feed_file_ready(http, hub, token, 0), SNAPSHOT_TIMEOUT_S, "the hub's newest file"
        )
        line = await ThinLine(
            "127.0.0.1",
            hub.port,
            rate_bps=THIN_RATE_BPS,
            burst=THIN_BURST,
            delay_s=THIN_DELAY_S,
            reset_at=current["bytes"] // 2,
            refuse_s=THIN_REFUSE_S,
        ).start()
        stop_later.append(line.stop)
        thin = edge_process(
            workdir / "edge-thin",
            "SD-BENCH-THIN",
            broker.url,
            hub_url=line.url,
            feed_token=token,
            tablet_token=TABLET,
            cameras={CAMERA_ID: CAMERA_TOKEN},
        )
        stop_later.append(thin)
        added: list[str] = []

        async def busy_feed() -> None:
            k = 0
            while True:
                await asyncio.sleep(DELTA_EVERY_S)
                plate = f"苏E{k:05d}"
                async with http.post(
                    f"{hub.base}/api/v1/watchlists/{LIST_ID}/entries", json={"plate": plate}
                ) as resp:
                    await resp.read()
                    if resp.status == 200:
                        added.append(plate)
                k += 1

        deltas = asyncio.create_task(busy_feed())
        try:
            thin.start()
            await thin.wait_listening(60)
            await login(eh, thin.base, TABLET)
            cameras.edges.append(thin)
            await load_kit_reader(eh, thin.base)
            await until(
                lambda: edge_finds(eh, thin, target.plate, target.entry_id),
                SNAPSHOT_TIMEOUT_S,
                "the edge behind the thin line to match a listed plate",
                interval=0.1,
            )
            out["thin_line_snapshot_s"] = round(time.monotonic() - thin.started_mono, 2)
            out["thin_line_bytes_fetched"] = line.down_bytes
            out["thin_line_resets"] = line.resets
            out["thin_line_connections"] = line.connections
            _say(f"thin line: matched after {out['thin_line_snapshot_s']} s, {line.down_bytes} bytes")
            # the deltas added during the download reach it too (kept, or taken from the hub's log)
            last = added[-1] if added else None
            if last is not None:
                t = time.monotonic()
                await until(
                    lambda: edge_finds(eh, thin, last, f"{LIST_ID}:{last}"),
                    60,
                    "the thin-line edge to hold the deltas made during its download",
                    interval=0.2,
                )
                out["thin_line_deltas_during_download"] = len(added)
                out["thin_line_caught_up_after_s"] = round(time.monotonic() - t, 2)
            status = await get_json(eh, f"{thin.base}/api/v1/status")
            out["thin_line_edge_snapshots"] = status["feed"]["snapshots"]
            out["thin_line_edge_peak_rss_mb"] = thin.rss_mb("VmHWM")
        finally:
            deltas.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deltas
            cameras.edges.clear()
            thin.stop()
            await line.stop()
    await cameras.stop()
    hub.stop()

    # 5. the hub serving the file to many edges at once over TLS
    out.update(await serve_phase(workdir, broker, console, token))
    broker.stop()
    return out


async def serve_phase(workdir: Path, broker: Any, console: str, token: str) -> dict[str, Any]:
    """The same hub (its store and newest file) over HTTPS; CPU it spends serving the file to N edges."""
    import ssl

    from cordon.pki import Pki

    pki = Pki(workdir / "pki")
    pki.init()
    pki.issue_server("cordon-hub", ["127.0.0.1"])
    folder = workdir / "pki" / "cordon-hub"
    hub = hub_process(
        workdir / "hub",
        broker.url,
        console_token=console,
        feed_token=token,
        csv_files=[],
        http={"cert_file": str(folder / "server.crt"), "key_file": str(folder / "server.key")},
    )
    hub.scheme = "https"
    hub.start()
    out: dict[str, Any] = {}
    ctx = ssl.create_default_context(cafile=str(workdir / "pki" / "ca.crt"))
    try:
        await hub.wait_listening(SNAPSHOT_TIMEOUT_S)
        connector = aiohttp.TCPConnector(ssl=ctx, limit=0)
        timeout = aiohttp.ClientTimeout(total=3600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            made = await until(
                lambda: feed_file_ready(http, hub, token, 0), SNAPSHOT_TIMEOUT_S, "the TLS hub's file"
            )

            async def fetch() -> int:
                got = 0
                async with http.get(
                    f"{hub.base}/api/v1/feed/file", headers={"Authorization": f"Bearer {token}"}
                ) as resp:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        got += len(chunk)
                return got

            for n in (50, 500):
                await asyncio.sleep(2)
                before, t = hub.cpu_s(), time.monotonic()
                sizes = await asyncio.gather(*(fetch() for _ in range(n)))
                used = (hub.cpu_s() or 0.0) - (before or 0.0)
                complete = sum(s == made["bytes"] for s in sizes)
                out[f"hub_serve_cpu_s_{n}"] = round(used, 2)
                out[f"hub_serve_wall_s_{n}"] = round(time.monotonic() - t, 2)
                out[f"hub_serve_complete_{n}"] = complete
                _say(f"TLS: {n} edges fetched the file ({complete} complete), hub CPU {used:.2f} s")
            out["hub_serve_rss_mb"] = hub.rss_mb()
    finally:
        hub.stop()
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

        replace_file = mirror.replace_file

        async def observed_replace_file(path: Any) -> Any:
            before = mirror.version
            result = await replace_file(path)
            self.check(idx, mirror)
            if self.measuring:
                self.snapshot_events.append(
                    {
                        "edge": idx,
                        "at_s": round(time.monotonic() - self.t0, 3),
                        "mirror_before": before,
                        "highest_before": self.highest.get(idx, 0),
                        "snapshot_version": result[1],
                        "plate_pending": self.plate is not None,
                    }
                )
            self.highest[idx] = max(self.highest.get(idx, 0), mirror.version)
            return result

        mirror.apply_delta = observed_apply_delta
        mirror.replace = observed_replace
        mirror.replace_file = observed_replace_file

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
    m = measured.get
    snapshot_s, p99, missed = m("snapshot_s"), m("delta_p99_ms"), m("missed")
    size, fetched = m("snapshot_bytes"), m("thin_line_bytes_fetched")

    def le(value: Any, bar: float) -> bool:
        return value is not None and value <= bar

    first = {
        "snapshot_entries": snapshot_entries,
        "snapshot_s": snapshot_s,
        "snapshot_bytes": size,
        "edge_rss_mb": m("edge_rss_mb"),
        "edge_peak_rss_mb": m("edge_peak_rss_mb"),
        "thin_line_snapshot_s": m("thin_line_snapshot_s"),
        "thin_line_bytes_fetched": fetched,
        "hub_serve_cpu_s": {"50": m("hub_serve_cpu_s_50"), "500": m("hub_serve_cpu_s_500")},
        "hub_load_s": m("hub_load_s"),
        "edges": edges,
        "feed_entries": feed_entries,
        "delta_p50_ms": m("delta_p50_ms"),
        "delta_p99_ms": p99,
        "deltas": m("deltas", 0),
        "missed": missed,
        "snapshots_taken_by_edges": m("snapshots_taken_by_edges"),
    }
    return {
        **first,
        **{k: v for k, v in measured.items() if k not in first and k != "errors"},
        "bars": {
            "snapshot_bytes_le_20000000": le(size, SNAPSHOT_BYTES_BAR),
            "edge_rss_mb_le_350": le(m("edge_rss_mb"), EDGE_RSS_BAR_MB),
            "edge_peak_rss_mb_le_500": le(m("edge_peak_rss_mb"), EDGE_PEAK_BAR_MB),
            "thin_line_snapshot_s_le_60": le(m("thin_line_snapshot_s"), THIN_LINE_BAR_S),
            "thin_line_bytes_fetched_le_1.05x": size is not None and le(fetched, 1.05 * size),
            "hub_serve_cpu_s_50_le_5": le(m("hub_serve_cpu_s_50"), HUB_SERVE_CPU_BAR_S),
            "snapshot_s_le_30": le(snapshot_s, SNAPSHOT_BAR_S),
            "delta_p99_ms_le_1000": le(p99, DELTA_BAR_MS) and missed == 0,
        },
        "errors": measured["errors"],
        "total_s": round(time.monotonic() - _started, 1),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "note": (
            "Everything on loopback with a Mosquitto of the benchmark's own. The snapshot feed is "
            "cordon.testing.realistic_feed (0.1% patterns, 5% person entries, reasons from 300 phrases, a "
            "case reference on 60%, an expiry on 30%, colour and type on most vehicles), written into the "
            "hub's store before it starts. snapshot_bytes: the hub's feed file (GET /api/v1/feed/file). "
            "snapshot_s: from starting a fresh `cordon edge` process until its GET /api/v1/check finds a "
            "listed plate. While edges run, camera reads are pushed to them (~10/s) and one kit photo goes "
            "through each one's reader. edge_rss_mb: VmRSS of that edge 10 s after it matched. "
            "edge_peak_rss_mb: the largest VmHWM of: the fresh edge after its fetch and swap "
            "(edge_peak_rss_mb_fresh), the same edge after a bulk change made the hub write a new file "
            "that replaced its full mirror (edge_peak_rss_mb_replace), the same edge taking a new file "
            "with a big difference (edge_peak_rss_mb_replace_big: its VmHWM reset just before; the hub's "
            "bench-notify list, a fifth of the feed, replaced by an import of 15% of the feed in other "
            "plates, so replace_big_difference entries differ), and the edge restarted from its "
            "mirror file (edge_peak_rss_mb_restart). thin_line_*: another fresh edge whose hub URL is a "
            "relay in this process (10 Mbit/s token bucket with bursts <= 64 KB, 100 ms each way, the "
            "connection reset at half the file and the port refused for 5 s after), with an entry added "
            "on the hub every 2 s throughout; bytes_fetched is every byte the relay passed towards the "
            "edge (HTTP headers and delta logs included). hub_serve_cpu_s: the same hub restarted over "
            "HTTPS, user+system CPU it spent while 50 (then 500) concurrent clients in this process each "
            "downloaded the whole file. Deltas: the edges are edge.app.create_app apps in the benchmark "
            "process on one asyncio loop (own broker connection, mirror file, FeedSync; no HTTP site); each "
            "(edge, addition) pair is timed from just before the hub's POST /api/v1/watchlists/{list}/entries "
            "until that edge's Mirror.match(plate) returns the entry, checked right after each "
            "apply_delta/replace returns; additions are sequential, each waiting for every edge or 5 s "
            "(then counted in missed); percentiles are over the pairs that arrived."
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
