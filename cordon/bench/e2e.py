"""End-to-end load and latency: broker, hub with a 1,000,000-entry watchlist, edges, on this machine.

``run()`` starts real parts on loopback (its own Mosquitto, one ``cordon hub`` process loaded from a
CSV, ``cordon edge`` processes, publisher and subscriber processes) and measures these things:

* ingest: simulated edges (``publishers`` processes, several checkpoints each, one paho connection
  per checkpoint) publish EventBatch messages of ``batch`` plate reads, the wire bytes a real edge's
  uplink sends, at QoS 1, keeping at most ``mqtt.max_inflight`` events unacknowledged by the hub, as
  the edge does. The same publishers first send the same batches (same count, same bytes, on a topic
  of the same length) to a bare paho QoS 1 subscriber on the same broker: that is the raw drain.
  Both clocks start at one instant all publishers wait for; the raw one stops at the subscriber's
  last message, the ingest one at the hub's last acknowledgement.
* saturated ingest: other simulated edges send without pause, keeping their in-flight windows full,
  and the reads the hub commits (its after-commit count on GET /api/v1/health) are counted over a
  steady window after a warm-up, with the CPU time the hub, PostgreSQL and the broker spend per read.
* alert latency: a real edge process with a JSON push camera; ``hits`` reads of listed plates are
  pushed over HTTP, each timed from just before its POST until the alert with that plate arrives on
  the hub console's WebSocket, while another process pushes a background load of unlisted reads.
* replay: that edge is stopped, its outbox is filled with ``backlog`` reads through OutboxStore (as
  after an outage), and it is started again; the clock runs from its uplink's connect (its log line)
  until its status reports an empty outbox.
* lost / duplicated: every camera event id that got a 200, every simulated and pre-filled event,
  looked up in the hub's record (``stored_camera_event_ids``).

With ``store="postgresql"`` a hub on SQLite first runs the two ingest phases with the same load (the
reference), then the hub runs every phase on a PostgreSQL cluster of the benchmark's own
(``cordon.testing.PostgresCluster``: fsync, synchronous_commit and full_page_writes on), configured as
an operator would (``[store] backend = "postgresql"``, the password in a secret file), and the record
is read back from its tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import platform
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from cordon.testing import (
    CordonProcess,
    Mosquitto,
    PostgresCluster,
    cpu_s,
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
from edge.outbox import PRIORITY_READ, OutboxStore

from .e2e_load import (
    BATCH,
    CAMERA_ID,
    INFLIGHT_EVENTS,
    background_main,
    lost_and_duplicated,
    plate_reads,
    publisher_main,
    raw_subscriber_main,
    sim_event_id,
    stored_camera_event_ids,
)

WATCHLIST_ENTRIES = 1_000_000
#: The phases, in the order they run (``--phases`` picks some).
PHASES = ("ingest", "saturated", "latency", "replay")
PUBLISHERS = 2
EDGES_PER_PUBLISHER = 4
BACKGROUND_PER_S = 500.0
HIT_RATE_PER_S = 20.0
ALERT_TIMEOUT_S = 10.0
INGEST_BAR = 0.7
P99_BAR_MS = 100.0
REPLAY_BAR_PER_S = 5000.0
#: PostgreSQL's committed reads per second over the steady window, against SQLite's in the same run.
STORE_RATIO_BAR = 0.7
PHASE_TIMEOUT_S = 900.0
WARMUP_S = 15.0
WINDOW_S = 60.0
#: Each saturating edge reads its pool of plates again and again (8 edges: 1.2M distinct plates).
SATURATED_PLATES_PER_EDGE = 150_000
SATURATED_TAIL_S = 3.0
SATURATED_TAG, SATURATED_PREFIX = "SAT", "sat"
SAMPLE_S = 1.0
SUB_WINDOW_S = 10.0
#: The benchmark's own PostgreSQL cluster (fsync, synchronous_commit and full_page_writes stay on).
PG_SETTINGS = {"shared_buffers": "256MB"}

_started = time.monotonic()


def _say(message: str) -> None:
    print(f"[bench e2e {time.monotonic() - _started:7.1f} s] {message}", file=sys.stderr, flush=True)


def parse_phases(text: str) -> list[str]:
    """``--phases``: comma-separated names of ``PHASES``."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(names) - set(PHASES))
    if unknown or not names:
        raise ValueError(
            f"--phases: no phase {', '.join(unknown) or '(none given)'} (of {', '.join(PHASES)})"
        )
    return names


# -- phases ----------------------------------------------------------------------------------------


@dataclass
class Rig:
    """What the phases share: the working folder, the broker, the hub and the plates it holds."""

    workdir: Path
    broker: Mosquitto
    hub: CordonProcess
    plates: list[str]
    console: str
    feed_token: str
    feed_version: int
    pg: PostgresCluster | None = None
    record_dsn: str | None = None
    """With the hub on PostgreSQL: its database (with the password), where lost and duplicated are counted."""
    more_hubs: list[CordonProcess] = field(default_factory=list)
    """Further hubs on the same store and broker (``cordon bench cluster``): the phases count every hub's
    commits, and the CPU of each."""

    @property
    def hubs(self) -> list[CordonProcess]:
        return [self.hub, *self.more_hubs]

    @property
    def hub_data(self) -> Path:
        return self.hub.workdir / "data"

    def stored(self, prefixes: list[str]) -> Counter[str]:
        """Camera event ids with these prefixes in the hub's record, and how often each is there."""
        return stored_camera_event_ids(self.hub_data, prefixes, self.record_dsn)


def _spawn(ctx: Any, target: Any, *args: Any) -> tuple[Any, Connection]:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    return proc, parent


def _recv(conn: Connection, within_s: float, what: str) -> dict[str, Any]:
    if not conn.poll(within_s):
        raise TimeoutError(f"no answer from {what} within {within_s:.0f} s")
    msg = conn.recv()
    if "error" in msg:
        raise RuntimeError(msg["error"])
    return dict(msg)


def _stop_procs(procs: list[Any]) -> None:
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.terminate()
            p.join(5)


async def ingest_phase(
    rig: Rig, reads: int, batch: int, publishers: int, edges_per: int, seed: int
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    n_edges = publishers * edges_per
    per_edge = max(batch, reads // n_edges)
    out: dict[str, Any] = {
        "ingest_reads": per_edge * n_edges,
        "batch_events": batch,
        "inflight_events": INFLIGHT_EVENTS,
        "publisher_processes": publishers,
        "simulated_edges": n_edges,
    }
    procs: list[Any] = []
    try:
        conns = []
        for p in range(publishers):
            proc, conn = _spawn(
                ctx, publisher_main, rig.broker.port, p, edges_per, per_edge, batch, INFLIGHT_EVENTS, seed
            )
            procs.append(proc)
            conns.append(conn)
        checkpoints: list[str] = []
        for c in conns:
            checkpoints += (await asyncio.to_thread(_recv, c, 300, "a publisher"))["checkpoints"]
        messages = n_edges * -(-per_edge // batch)
        sub, sub_conn = _spawn(ctx, raw_subscriber_main, rig.broker.port, messages, 300.0)
        procs.append(sub)
        await asyncio.to_thread(_recv, sub_conn, 60, "the raw subscriber")
        _say(f"{n_edges} simulated edges in {publishers} processes ready; raw drain of {messages} messages")

        async def phase(mode: str) -> tuple[float, list[dict[str, Any]]]:
            go_at = time.time() + 1.0
            for c in conns:
                c.send(("run", mode, go_at))
            results = [
                await asyncio.to_thread(_recv, c, PHASE_TIMEOUT_S, f"a publisher ({mode})") for c in conns
            ]
            return go_at, [e for r in results for e in r["edges"]]

        go_at, raw_edges = await phase("raw")
        sub_result = await asyncio.to_thread(_recv, sub_conn, PHASE_TIMEOUT_S, "the raw subscriber")
        raw_s = sub_result["last"] - go_at
        events = sum(e["events"] for e in raw_edges)
        out.update(
            {
                "raw_drain_per_s": round(events / raw_s) if sub_result["messages"] == messages else None,
                "raw_s": round(raw_s, 2),
                "raw_messages_received": sub_result["messages"],
                "raw_messages_sent": sum(e["messages"] for e in raw_edges),
                "raw_mb_per_s": round(sub_result["bytes"] / raw_s / 1e6, 1),
            }
        )
        _say(f"raw drain: {events} reads in {raw_s:.2f} s = {out['raw_drain_per_s']}/s")

        go_at, hub_edges = await phase("hub")
        ingest_s = max(e["last_done"] for e in hub_edges) - go_at
        out.update(
            {
                "ingest_per_s": round(events / ingest_s),
                "ingest_s": round(ingest_s, 2),
                "ingest_resent_batches": sum(e["resent"] for e in hub_edges),
                "ingest_bytes": sum(e["bytes"] for e in hub_edges),
                "raw_bytes": sum(e["bytes"] for e in raw_edges),
            }
        )
        _say(f"hub ingest: {events} reads in {ingest_s:.2f} s = {out['ingest_per_s']}/s")
        for c in conns:
            c.send(("stop",))
        stored = await asyncio.to_thread(rig.stored, ["sim:"])
        expected = (sim_event_id(cp, s) for cp in checkpoints for s in range(1, per_edge + 1))
        lost, dup, examples = lost_and_duplicated(stored, expected)
        out.update({"ingest_lost": lost, "ingest_duplicated": dup, "ingest_lost_examples": examples})
    finally:
        _stop_procs(procs)
    return out


def _cpu_now(rig: Rig) -> dict[str, float | None]:
    """CPU seconds used so far by the hub process (each hub's, as ``hub-1``, ``hub-2``, ... when there are
    several), PostgreSQL's whole process tree and the broker."""
    hubs = (
        {"hub": rig.hub.cpu_s()}
        if not rig.more_hubs
        else {f"hub-{i}": h.cpu_s() for i, h in enumerate(rig.hubs, 1)}
    )
    return {
        **hubs,
        "postgresql": rig.pg.cpu_s() if rig.pg is not None else None,
        "broker": cpu_s(rig.broker.proc.pid) if rig.broker.proc is not None else None,
    }


async def saturated_phase(
    rig: Rig,
    warmup_s: float,
    window_s: float,
    pool: int,
    batch: int,
    publishers: int,
    edges_per: int,
    seed: int,
    tag: str = SATURATED_TAG,
    prefix: str = SATURATED_PREFIX,
) -> dict[str, Any]:
    """Keep the hub saturated and count the reads it commits over a steady window after a warm-up.

    The simulated edges send without pause (each keeps its in-flight window full, as an edge with a
    backlog does) from ``warmup_s`` before the window until ``SATURATED_TAIL_S`` after it; the hub's
    count of committed reads (``reads_total`` of GET /api/v1/health, counted after each commit) is
    sampled every ``SAMPLE_S``, with the CPU time of the hub, of PostgreSQL's process tree and of the
    broker at the window's two ends. With several hubs (``rig.more_hubs``) the count is every hub's, and
    ``saturated_hub_shares`` says what part of the window's reads each committed. ``tag`` and ``prefix``
    name the simulated checkpoints and their event ids: a phase run again on the same store takes new ones."""
    ctx = mp.get_context("spawn")
    n_edges = publishers * edges_per
    out: dict[str, Any] = {"saturated_warmup_s": warmup_s, "saturated_plates_per_edge": pool}
    procs: list[Any] = []
    try:
        conns = []
        for p in range(publishers):
            proc, conn = _spawn(
                ctx,
                publisher_main,
                rig.broker.port,
                p,
                edges_per,
                pool,
                batch,
                INFLIGHT_EVENTS,
                seed + 31,
                tag,
                prefix,
                True,
            )
            procs.append(proc)
            conns.append(conn)
        checkpoints: list[list[str]] = []
        for c in conns:
            checkpoints.append((await asyncio.to_thread(_recv, c, 300, "a publisher"))["checkpoints"])
        go_at = time.time() + 1.0
        w0 = go_at + warmup_s
        w1 = w0 + window_s
        stop_at = w1 + SATURATED_TAIL_S
        for c in conns:
            c.send(("run", "hub", go_at, stop_at))
        _say(
            f"{n_edges} simulated edges saturating the hub: {warmup_s:.0f} s warm-up, {window_s:.0f} s window"
        )
        samples: list[tuple[float, int]] = []
        ends: list[tuple[float, int, dict[str, float | None], tuple[float, float, float]]] = []
        each: list[list[int]] = []
        async with http_session() as http:

            async def committed() -> tuple[float, int, list[int]]:
                before = time.time()
                counts = [
                    int((await get_json(http, f"{hub.base}/api/v1/health"))["reads_total"])
                    for hub in rig.hubs
                ]
                return (before + time.time()) / 2, sum(counts), counts

            for edge_at in (w0, w1):
                while time.time() < edge_at - SAMPLE_S:
                    samples.append((await committed())[:2])
                    await asyncio.sleep(max(0.0, min(SAMPLE_S, edge_at - time.time()) - 0.01))
                await asyncio.sleep(max(0.0, edge_at - time.time()))
                cpu = await asyncio.to_thread(_cpu_now, rig)
                at, reads, counts = await committed()
                samples.append((at, reads))
                ends.append((at, reads, cpu, os.getloadavg()))
                each.append(counts)
        results = [
            await asyncio.to_thread(_recv, c, PHASE_TIMEOUT_S, "a publisher (saturated)") for c in conns
        ]
        (t0, r0, cpu0, load0), (t1, r1, cpu1, load1) = ends
        committed_reads = r1 - r0
        in_window = [(t, r) for t, r in samples if t0 <= t <= t1]
        step = max(1, round(SUB_WINDOW_S / SAMPLE_S))
        sub_rates = [
            round((b[1] - a[1]) / (b[0] - a[0]))
            for a, b in zip(in_window[::step], in_window[step::step], strict=False)
            if b[0] > a[0]
        ]
        per_read: dict[str, float | None] = {}
        for part in cpu0:
            before, after = cpu0[part], cpu1[part]
            per_read[part] = (
                round((after - before) / committed_reads * 1e6, 1)
                if before is not None and after is not None and committed_reads > 0
                else None
            )
        sent = [
            (cp, edge["events"])
            for cps, r in zip(checkpoints, results, strict=True)
            for cp, edge in zip(cps, r["edges"], strict=True)
        ]
        out.update(
            {
                "saturated_reads_per_s": round(committed_reads / (t1 - t0)) if t1 > t0 else None,
                "saturated_window_s": round(t1 - t0, 2),
                "saturated_committed_in_window": committed_reads,
                f"saturated_rates_per_{SUB_WINDOW_S:.0f}s": sub_rates,
                "saturated_sent": sum(n for _, n in sent),
                "saturated_resent_batches": sum(e["resent"] for r in results for e in r["edges"]),
                "saturated_drain_s": round(
                    max(e["last_done"] for r in results for e in r["edges"]) - stop_at, 2
                ),
                "cpu_us_per_read": per_read,
                "load_average_at_window": [list(load0), list(load1)],
            }
        )
        if rig.more_hubs and committed_reads > 0:
            out["saturated_hub_shares"] = [
                round((b - a) / committed_reads, 3) for a, b in zip(*each, strict=True)
            ]
        _say(
            f"saturated ingest: {committed_reads} reads committed in {t1 - t0:.1f} s = "
            f"{out['saturated_reads_per_s']}/s (sub-windows {sub_rates}); CPU us/read {per_read}"
        )
        for c in conns:
            c.send(("stop",))
        stored = await asyncio.to_thread(rig.stored, [f"{prefix}:"])
        expected = (sim_event_id(cp, s, prefix) for cp, n in sent for s in range(1, n + 1))
        lost, dup, examples = lost_and_duplicated(stored, expected)
        out.update({"saturated_lost": lost, "saturated_duplicated": dup, "saturated_lost_examples": examples})
    finally:
        _stop_procs(procs)
    return out


async def _edge_ready(
    http: aiohttp.ClientSession, edge: CordonProcess, version: int
) -> dict[str, Any] | None:
    status = await get_json(http, f"{edge.base}/api/v1/status")
    ok = (
        status["feed"]["version"] >= version
        and status["feed"]["entries"] > 0
        and status["uplink"]["state"] == "connected"
        and status["uplink"]["hub_online"] is True
    )
    return status if ok else None


async def _hub_counters(http: aiohttp.ClientSession, rig: Rig) -> dict[str, Any]:
    """What the hub has committed so far (reads, and messages from its /metrics), with the CPU time of the
    hub, PostgreSQL and the broker and the load average, at one instant."""
    cpu = await asyncio.to_thread(_cpu_now, rig)
    health = await get_json(http, f"{rig.hub.base}/api/v1/health")
    messages = None
    async with http.get(f"{rig.hub.base}/metrics") as resp:
        if resp.status == 200:
            for line in (await resp.text()).splitlines():
                if line.startswith("cordon_hub_batches_committed_total "):
                    messages = int(float(line.split()[1]))
    return {
        "at": time.monotonic(),
        "reads": int(health["reads_total"]),
        "messages": messages,
        "cpu": cpu,
        "load": list(os.getloadavg()),
    }


def _fixed_load_cost(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the hub did while the hits were pushed under the background load: reads and messages committed,
    reads a message, CPU a committed read (hub, PostgreSQL's tree, broker)."""
    reads = after["reads"] - before["reads"]
    messages = (
        after["messages"] - before["messages"]
        if after["messages"] is not None and before["messages"] is not None
        else None
    )
    per_read: dict[str, float | None] = {}
    for part, was in before["cpu"].items():
        now = after["cpu"][part]
        per_read[part] = round((now - was) / reads * 1e6, 1) if None not in (was, now) and reads > 0 else None
    return {
        "latency_reads_per_s": round(reads / (after["at"] - before["at"]), 1),
        "latency_reads_per_message": round(reads / messages, 2) if messages else None,
        "latency_cpu_us_per_read": per_read,
        "latency_load_average": [before["load"], after["load"]],
    }


async def latency_phase(
    rig: Rig,
    edge: CordonProcess,
    tablet: str,
    camera_token: str,
    hits: int,
    seed: int,
    console_base: str | None = None,
) -> dict[str, Any]:
    """``console_base``: where the console connects (a front door before several hubs); the hub's own
    address by default."""
    ctx = mp.get_context("spawn")
    console_base = console_base or rig.hub.base
    out: dict[str, Any] = {}
    step = max(1, len(rig.plates) // hits)
    hit_plates = [rig.plates[i * step] for i in range(hits)]
    armed: dict[str, float] = {}
    arrived: dict[str, float] = {}
    armed_wall: dict[str, float] = {}
    at_hub: dict[str, float] = {}
    folded: list[str] = []
    http_s: list[float] = []
    ok_ids: list[str] = []
    failed: Counter[str] = Counter()
    all_arrived = asyncio.Event()
    async with http_session() as http:
        await login(http, console_base, rig.console)
        ws = await http.ws_connect(f"{console_base}/api/v1/ws", heartbeat=None, max_msg_size=0)

        async def listen() -> None:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.monotonic()
                frame = json.loads(msg.data)
                if frame.get("type") == "alert_folded":
                    # A background read near a hit's plate (a misread the matcher catches) raised an alert on
                    # the same entry before the hit came, and the hit folded into it: the console shows it
                    # as that alert's new sighting (alerts.fold_window_s), not as an alert of its own.
                    plate = frame["alert"]["hit"]["entry_plate"]
                    if plate in armed and plate not in arrived:
                        arrived[plate] = now - armed[plate]
                        folded.append(plate)
                        if len(arrived) == hits:
                            all_arrived.set()
                    continue
                if frame.get("type") != "alert":
                    continue
                plate = frame["alert"]["plate_read"]
                if plate in armed and plate not in arrived:
                    arrived[plate] = now - armed[plate]
                    # the hub stamps raised_at when the read reaches it (same machine, same clock)
                    at_hub[plate] = frame["alert"]["raised_at"] - armed_wall[plate]
                    if len(arrived) == hits:
                        all_arrived.set()

        listener = asyncio.create_task(listen())
        bg, bg_conn = _spawn(ctx, background_main, edge.base, camera_token, BACKGROUND_PER_S, seed)
        try:
            await asyncio.to_thread(_recv, bg_conn, 120, "the background pusher")
            await asyncio.sleep(2.0)  # let the background load settle before the first hit
            _say(f"background load of {BACKGROUND_PER_S:.0f} reads/s running; pushing {hits} hits")

            async def push(i: int, plate: str) -> None:
                event_id = f"hit:{i}"
                armed[plate] = time.monotonic()  # the clock starts just before the POST
                armed_wall[plate] = time.time()
                async with http.post(
                    f"{edge.base}/api/v1/cameras/{CAMERA_ID}/reads",
                    headers={"X-Camera-Token": camera_token},
                    json={"plate": plate, "event_id": event_id, "captured_at": time.time(), "lane": 1},
                ) as resp:
                    await resp.read()
                    http_s.append(time.monotonic() - armed[plate])
                    if resp.status == 200:
                        ok_ids.append(event_id)
                    else:
                        failed[str(resp.status)] += 1

            tasks = []
            before = await _hub_counters(http, rig)
            t0 = time.monotonic()
            for i, plate in enumerate(hit_plates):
                await asyncio.sleep(max(0.0, t0 + i / HIT_RATE_PER_S - time.monotonic()))
                tasks.append(asyncio.create_task(push(i, plate)))
            await asyncio.gather(*tasks)
            after = await _hub_counters(http, rig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_arrived.wait(), ALERT_TIMEOUT_S)
            bg_conn.send("stop")
            bg_result = await asyncio.to_thread(_recv, bg_conn, 120, "the background pusher")
        finally:
            _stop_procs([bg])
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await ws.close()
        latencies = list(arrived.values())
        bg_ok = bg_result["ok_ids"]
        out.update(
            {
                "alert_latency_ms": {
                    "p50": percentile_ms(latencies, 50),
                    "p99": percentile_ms(latencies, 99),
                    "max": round(max(latencies) * 1000, 1) if latencies else None,
                    "count": len(latencies),
                },
                "alert_latency_parts_ms": {
                    "camera_http_p50": percentile_ms(http_s, 50),
                    "camera_http_p99": percentile_ms(http_s, 99),
                    "push_to_hub_p50": percentile_ms(list(at_hub.values()), 50),
                    "push_to_hub_p99": percentile_ms(list(at_hub.values()), 99),
                    "hub_to_console_p50": percentile_ms([arrived[p] - at_hub[p] for p in at_hub], 50),
                    "hub_to_console_p99": percentile_ms([arrived[p] - at_hub[p] for p in at_hub], 99),
                },
                **_fixed_load_cost(before, after),
                "hits_pushed": hits,
                "hits_ok": len(ok_ids),
                "hits_failed": dict(failed),
                "alerts_missing": hits - len(latencies),
                "alerts_missing_plates": [p for p in hit_plates if p not in arrived][:10],
                "alerts_folded_into_earlier": folded,
                "background_sent": bg_result["sent"],
                "background_ok": len(bg_ok),
                "background_failed": bg_result["failed"],
                "background_per_s": round(bg_result["sent"] / bg_result["elapsed_s"], 1),
            }
        )
        _say(
            f"alert latency p50 {out['alert_latency_ms']['p50']} ms, p99 {out['alert_latency_ms']['p99']} ms "
            f"over {len(latencies)} hits; background {out['background_per_s']} reads/s"
        )

        await login(http, edge.base, tablet)

        async def drained() -> bool:
            status = await get_json(http, f"{edge.base}/api/v1/status")
            return bool(status["outbox"]["depth"] == 0)

        await until(drained, 300, "the edge's outbox to empty after the latency phase", interval=0.2)
    stored = await asyncio.to_thread(rig.stored, ["hit:", "bg:"])
    lost, dup, examples = lost_and_duplicated(stored, [*ok_ids, *bg_ok])
    out.update({"latency_lost": lost, "latency_duplicated": dup, "latency_lost_examples": examples})
    return out


async def prefill_outbox(path: Path, backlog: int, seed: int) -> None:
    """Commit ``backlog`` reads to an edge's outbox file, as if its uplink had been down for a while."""
    plates = make_plates(backlog, seed + 4242)
    outbox = OutboxStore(path)
    await asyncio.to_thread(outbox.start)
    try:
        for i in range(0, backlog, 5000):
            chunk = plates[i : i + 5000]
            reads = plate_reads("replay:", chunk, first_seq=i)  # the outbox numbers them itself
            await outbox.append(reads, [PRIORITY_READ] * len(reads))
    finally:
        await asyncio.to_thread(outbox.stop)


async def replay_phase(rig: Rig, edge: CordonProcess, tablet: str, backlog: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"backlog": backlog}
    edge.stop()
    t = time.monotonic()
    await prefill_outbox(edge.workdir / "data" / "outbox.db", backlog, seed)
    out["prefill_s"] = round(time.monotonic() - t, 1)
    log_offset = len(edge.log_text())
    _say(f"edge stopped, {backlog} reads committed to its outbox in {out['prefill_s']} s; starting it again")
    edge.start()
    await edge.wait_listening(120)
    depth_at_start: int | None = None
    async with http_session() as http:
        await login(http, edge.base, tablet)
        done_at = 0.0

        async def empty() -> bool:
            nonlocal done_at, depth_at_start
            status = await get_json(http, f"{edge.base}/api/v1/status")
            if depth_at_start is None:
                depth_at_start = status["outbox"]["depth"]
            if status["outbox"]["depth"] == 0:
                done_at = time.time()
                return True
            return False

        await until(empty, PHASE_TIMEOUT_S, "the edge's outbox to empty", interval=0.1)
    connected_at = log_time(edge.log_text()[log_offset:], "uplink connected to")
    if connected_at is None:
        raise RuntimeError("no 'uplink connected' line in the restarted edge's log")
    replay_s = done_at - connected_at
    out.update(
        {
            "replay_s": round(replay_s, 2),
            "replay_per_s": round(backlog / replay_s),
            "replay_depth_at_first_status": depth_at_start,
            "replay_from_process_start_s": round(done_at - edge.started_wall, 2),
        }
    )
    _say(f"replay: {backlog} events in {replay_s:.2f} s = {out['replay_per_s']}/s")
    stored = await asyncio.to_thread(rig.stored, ["replay:"])
    lost, dup, examples = lost_and_duplicated(stored, (f"replay:{i}" for i in range(backlog)))
    out.update({"replay_lost": lost, "replay_duplicated": dup, "replay_lost_examples": examples})
    return out


# -- the whole run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much each phase does (the command's options)."""

    reads: int
    hits: int
    backlog: int
    entries: int
    seed: int
    warmup_s: float
    window_s: float
    plates_per_edge: int


async def _ingest_phases(rig: Rig, sizes: Sizes, result: dict[str, Any], errors: list[str]) -> None:
    """The two ingest phases: a fixed load against the raw drain, then the saturated window."""
    if sizes.reads > 0:
        try:
            result.update(
                await ingest_phase(rig, sizes.reads, BATCH, PUBLISHERS, EDGES_PER_PUBLISHER, sizes.seed)
            )
        except Exception as exc:
            errors.append(f"ingest phase: {type(exc).__name__}: {exc}"[:2000])
            _say(errors[-1])
    if sizes.window_s > 0:
        try:
            result.update(
                await saturated_phase(
                    rig,
                    sizes.warmup_s,
                    sizes.window_s,
                    sizes.plates_per_edge,
                    BATCH,
                    PUBLISHERS,
                    EDGES_PER_PUBLISHER,
                    sizes.seed,
                )
            )
        except Exception as exc:
            errors.append(f"saturated phase: {type(exc).__name__}: {exc}"[:2000])
            _say(errors[-1])


async def _sqlite_reference(
    base: Path, broker: Mosquitto, plates: list[str], console: str, feed_token: str, sizes: Sizes
) -> dict[str, Any]:
    """The same ingest phases, same load, on a hub with the default store (SQLite); the hub is stopped after."""
    out: dict[str, Any] = {}
    errors: list[str] = []
    _say("SQLite reference: a hub on SQLite, the same ingest phases")
    hub, loaded = await start_hub(base / "sqlite-reference", broker, plates, console, feed_token, _say)
    try:
        out["hub_load_s"] = loaded["hub_load_s"]
        rig = Rig(base, broker, hub, plates, console, feed_token, loaded["version"])
        await _ingest_phases(rig, sizes, out, errors)
        out["hub_rss_mb"] = hub.rss_mb()
    finally:
        hub.stop()
    out["errors"] = errors
    return out


def _postgresql(base: Path, keep: bool) -> tuple[PostgresCluster, dict[str, Any], str, dict[str, Any]]:
    """A cluster of the benchmark's own with a database for the hub: the cluster, the hub's ``[store]``
    table (the password in a secret file), the connection string to read the record, what to report."""
    import psycopg

    cluster = PostgresCluster(settings=PG_SETTINGS).start()
    database = "cordon_bench"
    record_dsn = cluster.create_database(database)
    secret = base / "hub" / "db-password"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(cluster.password + "\n", encoding="utf-8")
    secret.chmod(0o600)
    store = {
        "backend": "postgresql",
        "dsn": cluster.dsn(database, password=False),
        "password_file": str(secret),
    }
    with psycopg.connect(record_dsn) as conn:
        shown = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in (
                "server_version",
                "shared_buffers",
                "fsync",
                "synchronous_commit",
                "full_page_writes",
            )
        }
    about = {**shown, "folder": str(cluster.folder) if keep else None}
    return cluster, store, record_dsn, about


async def _run(sizes: Sizes, keep: str | None, store: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    errors: list[str] = []
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="cordon-bench-e2e-"))
    base.mkdir(parents=True, exist_ok=True)
    _say(f"working in {base}")
    cleanup: list[Any] = []
    try:
        t = time.monotonic()
        plates = await asyncio.to_thread(make_plates, sizes.entries, sizes.seed)
        _say(f"{sizes.entries} plates generated in {time.monotonic() - t:.1f} s")
        # Mosquitto's queue per client must hold a whole raw phase if the subscriber falls behind.
        broker = Mosquitto(base / "mqtt", max_queued_messages=0)
        cleanup.append(broker.stop)
        await broker.start().ready()
        console, feed_token = "console-bench", secrets.token_urlsafe(16)
        pg: PostgresCluster | None = None
        store_table: dict[str, Any] | None = None
        record_dsn: str | None = None
        if store == "postgresql":
            if sizes.reads > 0 or sizes.window_s > 0:  # nothing to compare with when no ingest phase runs
                result["sqlite_reference"] = await _sqlite_reference(
                    base, broker, plates, console, feed_token, sizes
                )
                errors += [f"sqlite reference: {e}" for e in result["sqlite_reference"]["errors"]]
            pg, store_table, record_dsn, result["postgresql"] = await asyncio.to_thread(
                _postgresql, base, keep is not None
            )
            cleanup.append(pg.stop if keep else pg.destroy)
            _say(f"PostgreSQL {result['postgresql']['server_version']} started on port {pg.port}")
        hub, loaded = await start_hub(
            base / "hub", broker, plates, console, feed_token, _say, store=store_table
        )
        cleanup.append(hub.stop)
        result["hub_load_s"] = loaded["hub_load_s"]
        result["watchlist_entries"] = loaded["entries"]
        rig = Rig(base, broker, hub, plates, console, feed_token, loaded["version"], pg, record_dsn)
        await _ingest_phases(rig, sizes, result, errors)
        tablet, camera_token = "tablet-bench", "camera-bench"
        edge = edge_process(
            base / "edge",
            "SD-BENCH-001",
            broker.url,
            hub_url=hub.base,
            feed_token=feed_token,
            tablet_token=tablet,
            cameras={CAMERA_ID: camera_token},
        )
        cleanup.append(edge.stop)
        edge.start()
        await edge.wait_listening(120)
        async with http_session() as http:
            await login(http, edge.base, tablet)
            await until(
                lambda: _edge_ready(http, edge, loaded["version"]),
                600,
                "the edge to mirror the watchlist and connect",
                interval=0.2,
            )
        result["edge_ready_s"] = round(time.monotonic() - edge.started_mono, 1)
        _say(f"edge holds the feed and is connected after {result['edge_ready_s']} s")
        if sizes.hits > 0:
            try:
                result.update(await latency_phase(rig, edge, tablet, camera_token, sizes.hits, sizes.seed))
            except Exception as exc:
                errors.append(f"latency phase: {type(exc).__name__}: {exc}"[:2000])
                _say(errors[-1])
        result["edge_rss_mb"] = edge.rss_mb()
        if sizes.backlog > 0:
            try:
                result.update(await replay_phase(rig, edge, tablet, sizes.backlog, sizes.seed))
            except Exception as exc:
                errors.append(f"replay phase: {type(exc).__name__}: {exc}"[:2000])
                _say(errors[-1])
        result["hub_rss_mb"] = hub.rss_mb()
    except Exception as exc:
        errors.append(f"setup: {type(exc).__name__}: {exc}"[:2000])
        _say(errors[-1])
    finally:
        for stop in reversed(cleanup):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                errors.append(f"cleanup: {exc!r}")
        if not keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    result["errors"] = errors
    return result


_LOST = ("ingest_lost", "saturated_lost", "latency_lost", "replay_lost")
_DUPLICATED = ("ingest_duplicated", "saturated_duplicated", "latency_duplicated", "replay_duplicated")


def run(
    reads: int = 600_000,
    hits: int = 1000,
    backlog: int = 200_000,
    *,
    entries: int = WATCHLIST_ENTRIES,
    seed: int = 5,
    keep: str | None = None,
    store: str = "sqlite",
    warmup_s: float = WARMUP_S,
    window_s: float = WINDOW_S,
    plates_per_edge: int = SATURATED_PLATES_PER_EDGE,
    phases: Collection[str] = PHASES,
) -> dict[str, Any]:
    """Run the ``phases`` (all by default; see the module doc) and return one JSON-ready dict; a phase left
    out runs as if its size were 0. ``store="postgresql"``: the hub on a PostgreSQL cluster of the
    benchmark's own, after a hub on SQLite ran the same ingest phases (not when neither of them runs)."""
    if store not in ("sqlite", "postgresql"):
        raise ValueError(f"store must be sqlite or postgresql, not {store!r}")
    if set(phases) - set(PHASES):
        raise ValueError(f"no phase {', '.join(sorted(set(phases) - set(PHASES)))} (of {', '.join(PHASES)})")
    reads = reads if "ingest" in phases else 0
    hits = hits if "latency" in phases else 0
    backlog = backlog if "replay" in phases else 0
    window_s = window_s if "saturated" in phases else 0.0
    global _started
    _started = time.monotonic()
    load_before = os.getloadavg()
    sizes = Sizes(reads, hits, backlog, entries, seed, warmup_s, window_s, plates_per_edge)
    m = asyncio.run(_run(sizes, keep, store))
    raw, ingest = m.get("raw_drain_per_s"), m.get("ingest_per_s")
    ratio = round(ingest / raw, 3) if raw and ingest else None
    latency = m.get("alert_latency_ms") or {}
    reference = m.get("sqlite_reference") or {}
    lost = sum(m.get(k, 0) for k in _LOST) + sum(reference.get(k, 0) for k in _LOST)
    duplicated = sum(m.get(k, 0) for k in _DUPLICATED) + sum(reference.get(k, 0) for k in _DUPLICATED)
    replay = m.get("replay_per_s")
    saturated = m.get("saturated_reads_per_s")
    complete = not m["errors"]
    bars = {
        "ingest_ratio_ge_0.7": ratio is not None and ratio >= INGEST_BAR,
        "alert_p99_ms_le_100": latency.get("p99") is not None
        and latency["p99"] <= P99_BAR_MS
        and latency.get("count", 0) >= min(hits, 1000)
        and m.get("alerts_missing", 1) == 0,
        "replay_per_s_ge_5000": replay is not None and replay >= REPLAY_BAR_PER_S,
        "lost_and_duplicated_0": complete and lost == 0 and duplicated == 0,
    }
    summary: dict[str, Any] = {"store": store, "saturated_reads_per_s": saturated}
    if store == "postgresql":
        on_sqlite = reference.get("saturated_reads_per_s")
        store_ratio = round(saturated / on_sqlite, 3) if saturated and on_sqlite else None
        summary.update(
            {
                "sqlite_saturated_reads_per_s": on_sqlite,
                "ingest_ratio_pg_to_sqlite": store_ratio,
                "sqlite_cpu_us_per_read": reference.get("cpu_us_per_read"),
            }
        )
        bars["ingest_ratio_pg_to_sqlite_ge_0.7"] = store_ratio is not None and store_ratio >= STORE_RATIO_BAR
    summary["cpu_us_per_read"] = m.get("cpu_us_per_read")
    return {
        **summary,
        "raw_drain_per_s": raw,
        "ingest_per_s": ingest,
        "ingest_ratio": ratio,
        "alert_latency_ms": latency or None,
        "replay_per_s": replay,
        "lost": lost,
        "duplicated": duplicated,
        "bars": bars,
        "pass": all(bars.values()),
        "parameters": {
            "store": store,
            "phases": [p for p in PHASES if p in phases],
            "reads": reads,
            "hits": hits,
            "backlog": backlog,
            "watchlist_entries": entries,
            "batch_events": BATCH,
            "inflight_events": INFLIGHT_EVENTS,
            "publisher_processes": PUBLISHERS,
            "simulated_edges": PUBLISHERS * EDGES_PER_PUBLISHER,
            "background_reads_per_s": BACKGROUND_PER_S,
            "hits_per_s": HIT_RATE_PER_S,
            "warmup_s": warmup_s,
            "window_s": window_s,
            "saturated_plates_per_edge": plates_per_edge,
            "seed": seed,
        },
        **{
            k: v
            for k, v in m.items()
            if k
            not in {*summary, "raw_drain_per_s", "ingest_per_s", "alert_latency_ms", "replay_per_s", "errors"}
        },
        "errors": m["errors"],
        "total_s": round(time.monotonic() - _started, 1),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "bench_rss_mb": rss_mb(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "note": NOTE,
    }


NOTE = (
    "Everything runs on this one machine and shares its CPUs (cpus_usable): Mosquitto, the hub, PostgreSQL "
    "when store is postgresql, the edge, the publisher, subscriber and background processes and the "
    "benchmark itself; load_average says how busy the machine was. Rates are plate reads per second. "
    "raw_drain_per_s and ingest_per_s: the same publisher processes send the "
    "same EventBatch messages (batch_events reads each, encoded as the edge uplink encodes them, "
    "at most inflight_events unacknowledged per simulated edge); raw: to a bare paho QoS 1 subscriber, "
    "a batch is done at the broker's PUBACK, the clock stops at the subscriber's last message; ingest: "
    "to the hub, a batch is done at the hub's ack (after its commit), the clock stops at the last ack; "
    "both clocks start at one instant every publisher waits for. The simulated edges send reads "
    "only (no passages). saturated_reads_per_s: other simulated edges send without pause (each read of a "
    "pool of saturated_plates_per_edge plates, again and again, with new sequence numbers), keeping their "
    "in-flight windows full; after warmup_s, the hub's count of committed reads (GET /api/v1/health "
    "reads_total, counted after each commit) is read at both ends of a window of window_s, and sampled "
    "every second between (the rates per 10 s sub-window show how steady it was). cpu_us_per_read: CPU "
    "time (user + system, from /proc) over that window per read committed in it, of the hub process, of "
    "PostgreSQL's whole process tree (the postmaster, its children, and the children they reaped) and of "
    "the broker. With store postgresql, the hub runs on a PostgreSQL cluster of the benchmark's own "
    "(fsync, synchronous_commit and full_page_writes on; see postgresql), after a hub on SQLite "
    "(sqlite_reference) ran the same two ingest phases with the same load on the same machine; "
    "ingest_ratio_pg_to_sqlite is saturated_reads_per_s over the reference's. "
    "alert_latency_ms: from just before the camera's HTTP POST to a real "
    "`cordon edge` until the console WebSocket frame of the alert with that plate, hits paced at "
    "hits_per_s while another process pushes background_reads_per_s unlisted reads to the same edge; "
    "alert_latency_parts_ms splits it at the camera's 200 and at the alert's raised_at (the hub's "
    "receive time, same clock). "
    "replay_per_s: the edge is stopped, `backlog` reads are committed to its outbox through "
    "edge.outbox.OutboxStore (as after an outage), the edge is started again; the clock runs from its "
    "'uplink connected' log line (millisecond stamp) until GET /api/v1/status (polled every 0.1 s) "
    "shows outbox depth 0. lost: event ids (every HTTP 200, every simulated and pre-filled event) not "
    "in the hub's record (its day files, or its PostgreSQL tables); duplicated: ids stored more than "
    "once; both count the SQLite reference's phases too."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reads", type=int, default=600_000)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--entries", type=int, default=WATCHLIST_ENTRIES)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--warmup-s", type=float, default=WARMUP_S)
    parser.add_argument("--window-s", type=float, default=WINDOW_S)
    parser.add_argument("--keep", default=None)
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"the phases to run, comma-separated, of {','.join(PHASES)} (default: all); a phase left out "
        "runs as if its size were 0 (--reads, --window-s, --hits, --backlog)",
    )
    args = parser.parse_args(argv)
    try:
        phases = parse_phases(args.phases)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(
        args.reads,
        args.hits,
        args.backlog,
        entries=args.entries,
        keep=args.keep,
        store=args.store,
        warmup_s=args.warmup_s,
        window_s=args.window_s,
        phases=phases,
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
