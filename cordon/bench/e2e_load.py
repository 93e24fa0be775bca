"""The load of ``cordon bench e2e``: simulated edges, the raw-drain subscriber, background reads.

Each runs in a process of its own (``multiprocessing``, spawned), so the hub's clock and the
latency clock are not disturbed by the load that makes them move. A simulated edge publishes
EventBatch messages with the wire bytes of a real edge's uplink, at QoS 1, keeping at most
``mqtt.max_inflight`` events unacknowledged, as the edge does. ``stored_camera_event_ids`` reads
back what the hub recorded, to count what was lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from central.record.sqlite.dayfiles import SqliteReadStore
from cordon.testing import HOST, make_plates
from edge.outbox import encode_event
from edge.settings import MqttSettings as EdgeMqttSettings
from protocols import topics
from protocols.messages import SCHEMA_VERSION, Ack, PlateRead, decode, encode

_EDGE_DEFAULTS = EdgeMqttSettings()
#: What a real edge's uplink sends: batches of up to ``mqtt.batch_max`` events, at most
#: ``mqtt.max_inflight`` events unacknowledged, resent after ``mqtt.ack_timeout_s``.
BATCH = _EDGE_DEFAULTS.batch_max
INFLIGHT_EVENTS = _EDGE_DEFAULTS.max_inflight
ACK_TIMEOUT_S = _EDGE_DEFAULTS.ack_timeout_s
#: The raw drain's topics: the events topic with a prefix of the same length, so the hub never sees them.
RAW_PREFIX = "rawdrn/v1"
CAMERA_ID = "bench-cam"

assert len(RAW_PREFIX) == len(topics.PREFIX)


# -- the record ----------------------------------------------------------------------------------


@contextlib.contextmanager
def hub_record(hub_data: Path, dsn: str | None = None) -> Iterator[Any]:
    """The hub's record, read-only: its day files under ``hub_data``, or with ``dsn`` (a connection string
    with its password) the PostgreSQL record, on connections of its own (closed on leaving)."""
    if dsn is None:
        yield SqliteReadStore(hub_data / "record")
        return
    from central.record.postgresql.reads import PgReadStore

    record = PgReadStore(dsn)  # its read side needs no start(): nothing is migrated or recovered
    try:
        yield record
    finally:
        record.stop()


def stored_camera_event_ids(hub_data: Path, prefixes: Iterable[str], dsn: str | None = None) -> Counter[str]:
    """How many times each camera event id starting with one of ``prefixes`` is in the hub's record.

    The one place the benchmark reads the hub's store: its day files (or, with ``dsn``, its PostgreSQL
    record), through the store's own read interface.
    """
    wanted = tuple(prefixes)
    with hub_record(hub_data, dsn) as record:
        return Counter(
            r.camera_event_id
            for day in record.days()
            for r in record.iter_reads(day)
            if r.camera_event_id is not None and r.camera_event_id.startswith(wanted)
        )


def lost_and_duplicated(stored: Counter[str], expected: Iterable[str]) -> tuple[int, int, list[str]]:
    """Ids expected but absent, ids stored more than once, and a few lost ids for diagnosis."""
    lost = [e for e in expected if stored.get(e, 0) == 0]
    duplicated = sum(1 for n in stored.values() if n > 1)
    return len(lost), duplicated, lost[:10]


# -- simulated edges (publisher processes) --------------------------------------------------------


class _WireBatch(msgspec.Struct):
    """protocols.messages.EventBatch with its events already encoded, as the edge uplink sends it."""

    v: int
    checkpoint: str
    epoch: int
    sent_at: float
    events: list[msgspec.Raw]


def sim_checkpoint(publisher: int, k: int, tag: str = "SIM") -> str:
    return f"SD-{tag}-{publisher:02d}{k:02d}"


def sim_event_id(checkpoint: str, seq: int, prefix: str = "sim") -> str:
    return f"{prefix}:{checkpoint}:{seq}"


def plate_reads(prefix: str, plates: Sequence[str], first_seq: int = 1) -> list[PlateRead]:
    now = time.time()
    return [
        PlateRead(
            seq=first_seq + i,
            camera_id="sim-lane-1",
            captured_at=now,
            plate=p,
            plate_raw=p,
            plate_valid=True,
            confidence=91.0,
            lane=1,
            camera_event_id=f"{prefix}{first_seq + i}",
        )
        for i, p in enumerate(plates)
    ]


def _send_at_once(client: Any, userdata: Any, sock: Any) -> None:
    """TCP_NODELAY, as the edge uplink sets it (see EdgeUplink), so packets never wait for a delayed ACK."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SimEdge:
    """One simulated checkpoint: its own paho connection, its batches, the uplink's in-flight window.

    Finite (the default): one read per plate, every batch encoded before the clock starts. ``endless``:
    reads of the plates in turn (the pool again and again, each read a new sequence number), each batch
    encoded when the window has room for it, for as long as the caller says (``send_all(..., stop_at)``).
    """

    def __init__(
        self,
        port: int,
        checkpoint: str,
        epoch: int,
        plates: Sequence[str],
        batch: int,
        inflight_events: int,
        *,
        id_prefix: str = "sim",
        endless: bool = False,
    ) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.checkpoint, self.epoch, self.batch = checkpoint, epoch, batch
        self.plates, self.endless = plates, endless
        self.id_prefix = f"{id_prefix}:{checkpoint}:"
        self.encoded: list[list[msgspec.Raw]] = []
        if not endless:
            raws = [msgspec.Raw(encode_event(r)) for r in plate_reads(self.id_prefix, plates)]
            self.encoded = [raws[i : i + batch] for i in range(0, len(raws), batch)]
        self.window = max(1, inflight_events // batch) * batch
        self.cond = threading.Condition()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{checkpoint}-sim",
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_socket_open = _send_at_once
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.connect(HOST, port, 60)
        self.client.loop_start()
        self._reset("hub")

    def _batch(self, i: int) -> list[msgspec.Raw]:
        if not self.endless:
            return self.encoded[i]
        first = i * self.batch + 1
        n = len(self.plates)
        plates = [self.plates[(first - 1 + j) % n] for j in range(self.batch)]
        return [msgspec.Raw(encode_event(r)) for r in plate_reads(self.id_prefix, plates, first_seq=first)]

    def _reset(self, mode: str) -> None:
        self.mode = mode
        self.events = 0 if self.endless else len(self.plates)  # endless: sent so far
        self.acked = bytearray(self.events + 1)
        self.done = bytearray(len(self.encoded))
        self.done_count = 0
        self.inflight: dict[int, tuple[float, list[msgspec.Raw]]] = {}
        self.mids: dict[int, int] = {}
        self.early: set[int] = set()
        self.resent = 0
        self.bytes = 0
        self.last_done = 0.0

    # paho thread
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(topics.ack(self.checkpoint), qos=1)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if self.mode != "hub":
            return
        ack = decode(Ack, bytes(message.payload))
        if ack.epoch != self.epoch:
            return
        with self.cond:
            for lo, hi in ack.ranges:
                hi = min(hi, self.events)  # never more than was sent
                if hi < lo:
                    continue
                self.acked[lo : hi + 1] = b"\x01" * (hi - lo + 1)
                for i in range((lo - 1) // self.batch, (hi - 1) // self.batch + 1):
                    start = i * self.batch + 1
                    end = min(start + self.batch, self.events + 1)
                    if not self.done[i] and self.acked.count(0, start, end) == 0:
                        self._complete(i)
            self.cond.notify()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        if self.mode != "raw":
            return
        with self.cond:
            i = self.mids.pop(mid, None)
            if i is None:
                self.early.add(mid)
            else:
                self._complete(i)
            self.cond.notify()

    def _complete(self, i: int) -> None:
        if not self.done[i]:
            self.done[i] = 1
            self.done_count += 1
            self.inflight.pop(i, None)
            self.last_done = time.time()

    # sender thread
    def send_all(self, mode: str, go_at: float, stop_at: float | None = None) -> dict[str, Any]:
        """Send every batch in ``mode`` ("raw": broker PUBACK completes a batch; "hub": the hub's ack).

        Endless: send new batches until ``stop_at`` (unix time), then wait until every batch sent is done."""
        if self.endless and stop_at is None:
            raise ValueError("an endless simulated edge needs stop_at")
        self._reset(mode)
        topic = topics.events(self.checkpoint)
        if mode == "raw":
            topic = RAW_PREFIX + topic[len(topics.PREFIX) :]
        n = len(self.encoded)
        next_i = 0
        time.sleep(max(0.0, go_at - time.time()))
        while True:
            to_send: list[tuple[int, list[msgspec.Raw]]] = []
            if self.endless and next_i == n and time.time() < stop_at:  # type: ignore[operator]
                # Room for the next batch is checked below; encode it here, outside the lock.
                fresh = self._batch(next_i)
                with self.cond:
                    self.events += len(fresh)
                    self.acked.extend(bytes(len(fresh)))
                    self.done.append(0)
                    self.encoded.append(fresh)
                    n += 1
            with self.cond:
                if self.done_count == n and (not self.endless or time.time() >= stop_at):  # type: ignore[operator]
                    break
                now = time.monotonic()
                if mode == "hub":
                    stale = [i for i, (t, _) in self.inflight.items() if now - t > ACK_TIMEOUT_S]
                    for i in stale:
                        self.inflight[i] = (now, self.inflight[i][1])
                        to_send.append((i, self.inflight[i][1]))
                    self.resent += len(stale)
                used = sum(len(raws) for _, raws in self.inflight.values())
                while next_i < n and used + len(self.encoded[next_i]) <= self.window:
                    raws = self.encoded[next_i]
                    self.inflight[next_i] = (now, raws)
                    used += len(raws)
                    to_send.append((next_i, raws))
                    if self.endless:
                        self.encoded[next_i] = []  # kept in ``inflight`` until done: memory stays bounded
                    next_i += 1
                if not to_send:
                    if not (self.endless and next_i == n and time.time() < stop_at):  # type: ignore[operator]
                        self.cond.wait(0.5)
                    continue
            for i, raws in to_send:  # never call paho with our lock held: its thread takes ours in callbacks
                payload = encode(
                    _WireBatch(
                        v=SCHEMA_VERSION,
                        checkpoint=self.checkpoint,
                        epoch=self.epoch,
                        sent_at=time.time(),
                        events=raws,
                    )
                )
                self.bytes += len(payload)
                info = self.client.publish(topic, payload, qos=1)
                if mode == "raw":
                    with self.cond:
                        if info.mid in self.early:
                            self.early.discard(info.mid)
                            self._complete(i)
                        else:
                            self.mids[info.mid] = i
        return {
            "events": self.events,
            "messages": n,
            "bytes": self.bytes,
            "last_done": self.last_done,
            "resent": self.resent,
        }

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _send_into(
    results: list[dict[str, Any]], i: int, sim: SimEdge, mode: str, go_at: float, stop_at: float | None
) -> None:
    results[i] = sim.send_all(mode, go_at, stop_at)


def publisher_main(
    conn: Connection,
    port: int,
    publisher: int,
    edges: int,
    events_per_edge: int,
    batch: int,
    inflight_events: int,
    seed: int,
    tag: str = "SIM",
    id_prefix: str = "sim",
    endless: bool = False,
) -> None:
    """A publisher process: build its simulated edges, then run each phase the parent asks for.

    ``events_per_edge``: each edge's reads, one per plate; endless, the size of each edge's pool of
    plates, read again and again until the phase's stop time."""
    try:
        plates = make_plates(edges * events_per_edge, seed + 1000 + publisher)
        sims = []
        for k in range(edges):
            cp = sim_checkpoint(publisher, k, tag)
            epoch = int(time.time() * 1000) * 1000 + publisher * 100 + k
            sims.append(
                SimEdge(
                    port,
                    cp,
                    epoch,
                    plates[k * events_per_edge : (k + 1) * events_per_edge],
                    batch,
                    inflight_events,
                    id_prefix=id_prefix,
                    endless=endless,
                )
            )
        del plates
        for s in sims:
            if not s.connected.wait(30):
                raise RuntimeError(f"{s.checkpoint}: no MQTT connection")
        conn.send({"ready": True, "checkpoints": [s.checkpoint for s in sims]})
        while True:
            command = conn.recv()
            if command[0] == "stop":
                break
            _, mode, go_at, *rest = command
            stop_at = rest[0] if rest else None
            results: list[dict[str, Any]] = [{} for _ in sims]
            threads = [
                threading.Thread(target=_send_into, args=(results, i, s, mode, go_at, stop_at))
                for i, s in enumerate(sims)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            conn.send({"mode": mode, "edges": results})
        for s in sims:
            s.close()
    except Exception as exc:  # the parent reports it
        conn.send({"error": f"publisher {publisher}: {type(exc).__name__}: {exc}"})


def raw_subscriber_main(conn: Connection, port: int, expected_messages: int, timeout_s: float) -> None:
    """A bare paho QoS 1 subscriber on the raw topics: counts messages and bytes, notes first and last."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    state = {"messages": 0, "bytes": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        now = time.time()
        if not state["messages"]:
            state["first"] = now
        state["messages"] += 1
        state["bytes"] += len(message.payload)
        state["last"] = now
        if state["messages"] >= expected_messages:
            done.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-raw-drain", clean_session=True, protocol=paho.MQTTv311
    )
    client.on_message = on_message
    client.on_socket_open = _send_at_once  # its PUBACKs must not wait either: the raw drain is the best case
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(
        f"{RAW_PREFIX}/cp/+/{topics.TopicKind.EVENTS.value}", qos=1
    )
    client.connect(HOST, port, 60)
    client.loop_start()
    if not subscribed.wait(30):
        conn.send({"error": "raw subscriber: no SUBACK"})
        return
    conn.send({"ready": True})
    done.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    conn.send(state)


# -- background load (a process of its own, so it does not disturb the latency clock) -------------


def background_main(conn: Connection, base: str, token: str, per_s: float, seed: int) -> None:
    """Push unlisted reads to an edge at ``per_s`` until told to stop; report the ids that got a 200."""
    plates = make_plates(int(per_s * 600), seed + 77)

    async def main() -> dict[str, Any]:
        ok: list[str] = []
        failed: Counter[str] = Counter()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), stop.set)
        pending: set[asyncio.Task[None]] = set()
        limit = asyncio.Semaphore(200)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60), connector=aiohttp.TCPConnector(limit=200)
        ) as http:

            async def push(i: int) -> None:
                event_id = f"bg:{i}"
                try:
                    async with (
                        limit,
                        http.post(
                            f"{base}/api/v1/cameras/{CAMERA_ID}/reads",
                            headers={"X-Camera-Token": token},
                            json={
                                "plate": plates[i % len(plates)],
                                "event_id": event_id,
                                "captured_at": time.time(),
                                "lane": 2,
                            },
                        ) as resp,
                    ):
                        await resp.read()
                        if resp.status == 200:
                            ok.append(event_id)
                        else:
                            failed[str(resp.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failed[type(exc).__name__] += 1

            conn.send({"ready": True})
            t0 = time.monotonic()
            i = 0
            while not stop.is_set():
                due = t0 + i / per_s
                delay = due - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    continue
                task = asyncio.create_task(push(i))
                pending.add(task)
                task.add_done_callback(pending.discard)
                i += 1
            elapsed = time.monotonic() - t0
            if pending:
                await asyncio.wait(pending)
        return {"sent": i, "ok_ids": ok, "failed": dict(failed), "elapsed_s": elapsed}

    result = asyncio.run(main())
    conn.recv()
    conn.send(result)
