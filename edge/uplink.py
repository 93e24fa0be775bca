"""The edge's only MQTT module: publish the outbox to the hub, take acks and alerts back.

Delivery rests on Cordon's own end-to-end acknowledgement, not on the broker: an event is
published (QoS 1) at most ``max_inflight`` at a time, and stays in the outbox until the hub's
ack names its sequence number. What stays unacknowledged past ``ack_timeout_s`` is sent again,
and everything in flight is replayed when the hub tier announces itself online, when one of several
hubs goes offline (its last will: what it had taken is lost with its clean session), or when the
connection is re-established. The hub inserts idempotently, so a resend costs bandwidth, never a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import socket
import sqlite3
import ssl
import time
from collections.abc import Awaitable, Callable

import aiomqtt
import msgspec
from aiomqtt.exceptions import MqttConnectError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocols import signing, topics
from protocols.errors import CordonError
from protocols.feed import FeedDelta, FeedVersion
from protocols.messages import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    Ack,
    Alert,
    AlertReceipt,
    CheckpointStatus,
    DecodeError,
    EvidenceRequest,
    HubParameters,
    HubStatus,
    OfficerAccounts,
    decode,
    encode,
)
from runtime.deadletters import DeadLetterStore
from runtime.link import REFUSED_FOR_GOOD, LinkState
from runtime.sqlwriter import WriterClosed
from runtime.tls import mqtt_endpoint

from . import evidence_reply
from .evidence import EvidenceStore
from .outbox import PRIORITY_READ, OutboxStore, Pending
from .settings import MqttSettings

log = logging.getLogger(__name__)
BATCH_BYTES = MAX_PAYLOAD_BYTES - 8192
"""Events per batch stop short of the hub's payload limit; the rest is room for the envelope and signature."""


def refused_for_good(exc: aiomqtt.MqttError) -> str | None:
    """Why the broker refused us for good, or None when retrying may help.

    Only a refused CONNECT counts. Other errors carry paho's own client codes, which overlap the
    CONNACK codes: a publish on a connection that just died fails with MQTT_ERR_NO_CONN (4), which
    must not be read as CONNACK 4 (bad user name or password) and end the uplink for good.
    """
    if not isinstance(exc, MqttConnectError):
        return None
    code = exc.rc if isinstance(exc.rc, int) else int(getattr(exc.rc, "value", 0))
    return REFUSED_FOR_GOOD.get(code)


#: Nagle's algorithm off: with it on, a packet written while an earlier one is unacknowledged waits for
#: the broker's delayed TCP ACK (about 40 ms on Linux), and every batch paid that before the hub had it.
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class UplinkRefused(CordonError, RuntimeError):
    """The broker refused our credentials; retrying will not help."""


class _OutgoingBatch(msgspec.Struct):
    """Same wire shape as protocols.messages.EventBatch, with events already encoded."""

    v: int
    checkpoint: str
    epoch: int
    sent_at: float
    events: list[msgspec.Raw]


class EdgeUplink:
    def __init__(
        self,
        checkpoint: str,
        mqtt: MqttSettings,
        outbox: OutboxStore,
        on_alert: Callable[[Alert], Awaitable[None]],
        status_extra: Callable[[], Awaitable[dict[str, object]]] | None = None,
        on_feed_delta: Callable[[FeedDelta], Awaitable[None]] | None = None,
        on_feed_version: Callable[[FeedVersion], Awaitable[None]] | None = None,
        on_accounts: Callable[[OfficerAccounts], Awaitable[None]] | None = None,
        software: str = "",
        endpoint: tuple[str, int, ssl.SSLContext | None] | None = None,
        signing_key: Ed25519PrivateKey | None = None,
        hub_key: Ed25519PublicKey | None = None,
        hub_signature_required: bool = False,
        evidence: EvidenceStore | None = None,
        dead: DeadLetterStore | None = None,
        on_connected: Callable[[], Awaitable[object]] | None = None,
        on_fold_window: Callable[[float], Awaitable[None]] | None = None,
        on_hub_online: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        #: Where a message from the hub that does not decode is kept, with the reason (a major version
        #: this edge does not read, a broken payload); the edge goes on either way.
        self._dead = dead
        self.bad_messages = 0
        #: Run on every connect once subscribed (the edge sends the receipts the broker has not taken).
        self._on_connected = on_connected
        #: The hub announced its fold window (protocols/folding.py) in its parameters.
        self._on_fold_window = on_fold_window
        #: The hub's status turned online (it has subscribed again: what it may have missed is sent again).
        self._on_hub_online = on_hub_online
        #: Full pictures the hub may ask for over MQTT (edge/evidence_reply.py).
        self._evidence = evidence
        #: This checkpoint signs what it publishes; it checks what the hub publishes (protocols/signing.py).
        self._signing_key = signing_key
        self._hub_key = hub_key
        self._hub_signature_required = hub_signature_required
        self.bad_signatures = 0
        self.config = mqtt
        #: host, port, TLS context; create_app builds it at start-up so a bad certificate stops the edge there.
        self._endpoint = endpoint
        self.username = mqtt.username or checkpoint  # the broker ACL expects the checkpoint id
        self.software = software
        self.outbox = outbox
        self._on_alert = on_alert
        self._status_extra = status_extra
        self._on_feed_delta = on_feed_delta
        self._on_feed_version = on_feed_version
        self._on_accounts = on_accounts
        self._pending: list[tuple[int, int]] = []
        self._queued: set[int] = set()
        self._inflight: dict[int, tuple[float, int]] = {}
        #: When the oldest event now waiting began to wait (``mqtt.hold_ms``); None while none waits.
        self._waiting_since: float | None = None
        self._wake = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self.state = LinkState.CONNECTING
        #: The hub tier's status (``cordon/v1/hub/status``: a lone hub's, or the tier's kept by several).
        self._tier_online: bool | None = None
        #: Each hub's own status when several share the events (``cordon/v1/hub/<id>/status``).
        self.hubs: dict[str, bool] = {}
        self.last_error: str | None = None
        self.published_events = 0
        self.resent_events = 0
        self.acked_events = 0
        self.connects = 0

    # -- called by the rest of the edge -------------------------------------------------
    def enqueue(self, items: list[Pending]) -> None:
        """Events just committed to the outbox; send them as soon as the link allows."""
        if not self._pending:
            self._waiting_since = time.monotonic()
        for item in items:
            if item.seq not in self._queued and item.seq not in self._inflight:
                heapq.heappush(self._pending, (item.priority, item.seq))
                self._queued.add(item.seq)
        self._wake.set()

    def _hold_s(self) -> float:
        """How much longer the waiting events should wait before they are sent (0: send now): Nagle's rule.
        While the hub has not acknowledged what is in flight, plain reads and passages wait for its
        acknowledgement, at most ``mqtt.hold_ms``, so that they travel together: at a few hundred reads a
        second the hub then commits one message of many reads instead of many of one or two, each costing
        it a transaction's fixed work. A hit or a gap at the head of the queue, a full batch, or nothing in
        flight sends at once, so an alert never waits and a lone read does not either."""
        hold = self.config.hold_ms / 1000
        if hold <= 0 or not self._inflight or not self._pending:
            return 0.0
        if self._pending[0][0] < PRIORITY_READ or len(self._pending) >= self.config.batch_max:
            return 0.0
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        return max(0.0, hold - (time.monotonic() - self._waiting_since))

    @property
    def hub_online(self) -> bool | None:
        """Whether the hub tier takes events: the tier's status says so, or any one hub's own does (the
        tier's topic says offline for a moment when one of several hubs goes); None before either came."""
        if self._tier_online is None and not self.hubs:
            return None
        return bool(self._tier_online) or any(self.hubs.values())

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def queued(self) -> int:
        return len(self._queued)

    # -- the connection loop -------------------------------------------------------------
    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; returns only when refused for good."""
        self.enqueue(self.outbox.take_initial_pending())
        delay = self.config.reconnect_min_s
        cfg = self.config
        host, port, tls = self._endpoint or mqtt_endpoint(cfg.url, cfg.ca_file, cfg.cert_file, cfg.key_file)
        while True:
            self.state = LinkState.CONNECTING
            will = aiomqtt.Will(
                topics.status(self.checkpoint),
                self._signed(encode(self._status(online=False))),
                qos=1,
                retain=True,
            )
            client = aiomqtt.Client(
                host,
                port,
                identifier=self.checkpoint,
                username=self.username,
                password=self.config.password,
                will=will,
                clean_session=False,
                keepalive=self.config.keepalive_s,
                timeout=10,
                protocol=aiomqtt.ProtocolVersion.V311,
                tls_context=tls,
                socket_options=_SOCKET_OPTIONS,
            )
            try:
                async with client:
                    self._client = client
                    self.state = LinkState.CONNECTED
                    self.connects += 1
                    self.last_error = None
                    delay = self.config.reconnect_min_s
                    log.info("uplink connected to %s", self.config.url)
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                refusal = refused_for_good(exc)
                if refusal is not None:
                    self.state = LinkState.REFUSED
                    self.last_error = f"broker refused the connection: {refusal}"
                    log.error("uplink: %s; not retrying, fix the [mqtt] credentials", self.last_error)
                    raise UplinkRefused(self.last_error) from None
                self._lost(exc)
            finally:
                self._client = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max_s)

    def _lost(self, exc: Exception) -> None:
        self.state = LinkState.OFFLINE
        self._tier_online = None
        self.hubs.clear()
        self.last_error = str(exc) or type(exc).__name__
        log.warning("uplink lost: %s", self.last_error)

    async def _serve(self, client: aiomqtt.Client) -> None:
        cp = self.checkpoint
        await client.subscribe(topics.ack(cp), qos=1)
        await client.subscribe(topics.alerts(cp), qos=1)
        await client.subscribe(topics.hub_status(), qos=1)
        await client.subscribe(topics.every_hub_status(), qos=1)
        await client.subscribe(topics.hub_parameters(), qos=1)
        if self._on_feed_delta is not None:
            await client.subscribe(topics.feed_delta(), qos=1)
        if self._on_feed_version is not None:
            await client.subscribe(topics.feed_version(), qos=1)
        if self._on_accounts is not None:
            await client.subscribe(topics.accounts(cp), qos=1)
        await client.subscribe(topics.evidence_request(cp), qos=1)
        await self.publish_status()
        # A new connection may have lost what was in flight on the old one: send it again.
        self._requeue_inflight(resend=True)
        if self._on_connected is not None:
            await self._on_connected()
        # A lost connection surfaces inside the task group as an ExceptionGroup; unwrap it so run()
        # sees the MqttError and reconnects instead of letting the uplink task die.
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._sender(client))
                tasks.create_task(self._status_loop())
                async for message in client.messages:
                    await self._on_message(str(message.topic), bytes(message.payload or b""))
        except* aiomqtt.MqttError as group:
            raise group.exceptions[0] from None

    async def publish_status(self) -> None:
        client = self._client
        if client is None:
            return
        status = self._status(online=True)
        if self._status_extra is not None:
            extra = await self._status_extra()
            status = msgspec.structs.replace(status, **extra)
        await client.publish(topics.status(self.checkpoint), self._signed(encode(status)), qos=1, retain=True)

    async def publish_receipt(self, receipt: AlertReceipt) -> bool:
        """Publish an alarm receipt (QoS 1, signed); True once the broker has it, False while offline."""
        client = self._client
        if client is None or self.state is not LinkState.CONNECTED:
            return False
        await client.publish(
            topics.receipt(self.checkpoint), self._signed(encode(receipt)), qos=1, timeout=10
        )
        return True

    async def say_goodbye(self) -> None:
        """On a clean shutdown the will does not fire: publish the offline status ourselves."""
        client = self._client
        if client is None:
            return
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await client.publish(
                topics.status(self.checkpoint),
                self._signed(encode(self._status(online=False))),
                qos=1,
                retain=True,
                timeout=2,
            )

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            await self.publish_status()

    def _status(self, *, online: bool) -> CheckpointStatus:
        return CheckpointStatus(
            v=SCHEMA_VERSION,
            checkpoint=self.checkpoint,
            online=online,
            sent_at=time.time(),
            epoch=self.outbox.epoch,
            software=self.software or None,
        )

    # -- sending ---------------------------------------------------------------------------
    def _requeue_inflight(self, *, resend: bool, older_than: float | None = None) -> int:
        moved = 0
        for seq, (sent_at, priority) in list(self._inflight.items()):
            if older_than is None or sent_at < older_than:
                del self._inflight[seq]
                heapq.heappush(self._pending, (priority, seq))
                self._queued.add(seq)
                moved += 1
        if moved and resend:
            self.resent_events += moved
            self._wake.set()
        return moved

    async def _sender(self, client: aiomqtt.Client) -> None:
        cfg = self.config
        me = asyncio.current_task()
        while True:
            # On Python 3.11 asyncio.wait_for (used inside aiomqtt's publish) returns normally when the
            # awaited result and a cancellation arrive together, losing the cancellation; without this
            # check the sender would then wait forever and shutdown would hang.
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            wait_s = cfg.ack_timeout_s / 2
            if hold := self._hold_s():
                wait_s = min(wait_s, hold)  # held events go when their hold ends, acknowledged or not
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()
            self._wake.clear()
            self._requeue_inflight(resend=True, older_than=time.monotonic() - cfg.ack_timeout_s)
            while self._pending and len(self._inflight) < cfg.max_inflight and not (me and me.cancelling()):
                if self._hold_s():
                    break
                room = min(cfg.batch_max, cfg.max_inflight - len(self._inflight))
                chosen: list[tuple[int, int]] = []
                while self._pending and len(chosen) < room:
                    priority, seq = heapq.heappop(self._pending)
                    self._queued.discard(seq)
                    chosen.append((priority, seq))
                # what is still waiting (or is put back below) starts its hold now
                self._waiting_since = time.monotonic() if self._pending else None
                try:
                    bodies = await self.outbox.load([seq for _, seq in chosen])
                except BaseException:
                    # Cancelled because the connection died (or the read failed): the chosen events are
                    # neither queued nor in flight now, so put them back or nothing would send them again.
                    for item in chosen:
                        heapq.heappush(self._pending, item)
                        self._queued.add(item[1])
                    raise
                live = [(p, s) for p, s in chosen if s in bodies]  # the rest was acked meanwhile
                live = self._fit(live, bodies)
                if not live:
                    continue
                batch = _OutgoingBatch(
                    v=SCHEMA_VERSION,
                    checkpoint=self.checkpoint,
                    epoch=self.outbox.epoch,
                    sent_at=time.time(),
                    events=[msgspec.Raw(bodies[s]) for _, s in live],
                )
                now = time.monotonic()
                for priority, seq in live:
                    self._inflight[seq] = (now, priority)
                try:
                    await client.publish(topics.events(self.checkpoint), self._signed(encode(batch)), qos=1)
                except aiomqtt.MqttError:
                    self._requeue_inflight(resend=False)
                    raise
                self.published_events += len(live)

    def _fit(self, chosen: list[tuple[int, int]], bodies: dict[int, bytes]) -> list[tuple[int, int]]:
        """The chosen events that fit in one batch under the hub's payload limit (hits carrying
        thumbnails are ~16 KB each); the rest go back to the queue for the next batch."""
        size, fits = 0, []
        for item in chosen:
            size += len(bodies[item[1]]) + 1
            if fits and size > BATCH_BYTES:
                heapq.heappush(self._pending, item)
                self._queued.add(item[1])
            else:
                fits.append(item)
        return fits

    # -- receiving -------------------------------------------------------------------------
    def _signed(self, payload: bytes) -> bytes:
        return signing.sign(payload, self._signing_key) if self._signing_key is not None else payload

    async def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            parsed = topics.parse(topic)
        except topics.TopicError:
            log.warning("uplink: ignoring message on unexpected topic %r", topic[:200])
            return
        if payload:
            try:
                payload = signing.open_signed(payload, self._hub_key, required=self._hub_signature_required)
            except signing.SignatureError as exc:
                # A message the hub did not sign (a forged ack would delete reads never stored): drop it.
                self.bad_signatures += 1
                log.error("uplink: dropping a %s message: %s", parsed.kind, exc)
                return
        try:
            if parsed.kind is topics.TopicKind.ACK:
                await self._on_ack(decode(Ack, payload))
            elif parsed.kind is topics.TopicKind.ALERTS:
                await self._on_alert(decode(Alert, payload))
            elif parsed.kind is topics.TopicKind.HUB_STATUS:
                was = self.hub_online
                self._tier_online = decode(HubStatus, payload).online
                await self._hub_tier_changed(was)
            elif parsed.kind is topics.TopicKind.ONE_HUB_STATUS and parsed.hub is not None:
                was = self.hub_online
                self._on_one_hub_status(parsed.hub, decode(HubStatus, payload) if payload else None)
                await self._hub_tier_changed(was)
            elif parsed.kind is topics.TopicKind.HUB_PARAMETERS and payload:
                parameters = decode(HubParameters, payload)
                if self._on_fold_window is not None:
                    await self._on_fold_window(parameters.fold_window_s)
            elif parsed.kind is topics.TopicKind.FEED_DELTA and self._on_feed_delta is not None:
                await self._on_feed_delta(decode(FeedDelta, payload))
            elif parsed.kind is topics.TopicKind.FEED_VERSION and self._on_feed_version is not None:
                await self._on_feed_version(decode(FeedVersion, payload))
            elif parsed.kind is topics.TopicKind.ACCOUNTS and self._on_accounts is not None and payload:
                await self._on_accounts(decode(OfficerAccounts, payload))
            elif parsed.kind is topics.TopicKind.EVIDENCE_REQUEST:
                await self._on_evidence_request(decode(EvidenceRequest, payload))
        except DecodeError as exc:
            self.bad_messages += 1
            log.warning("uplink: bad %s message from the hub: %s", parsed.kind, exc.reason)
            if self._dead is not None:
                try:
                    await self._dead.record(f"hub:{parsed.kind}", exc.reason, payload, self.checkpoint)
                except (sqlite3.Error, WriterClosed) as err:  # shutting down, or a full disk
                    log.error("uplink: could not keep the bad message as a dead letter: %s", err)

    async def _on_evidence_request(self, request: EvidenceRequest) -> None:
        # Replies are signed like every other message this checkpoint publishes.
        replies = await asyncio.to_thread(
            evidence_reply.answer, self._evidence, self.checkpoint, self.outbox.epoch, request
        )
        client = self._client
        log.info("uplink: evidence request %s for read %d/%d", request.request_id, request.epoch, request.seq)
        if client is None:
            return  # the hub asks again when this checkpoint is back online
        for reply in replies:
            await client.publish(topics.evidence_reply(self.checkpoint), self._signed(encode(reply)), qos=1)

    async def _on_ack(self, ack: Ack) -> None:
        if ack.epoch != self.outbox.epoch:
            return  # an ack for an earlier disk of this checkpoint
        for lo, hi in ack.ranges:
            if hi - lo < 4096:
                for seq in range(lo, hi + 1):
                    self._inflight.pop(seq, None)
            else:
                for seq in [s for s in self._inflight if lo <= s <= hi]:
                    del self._inflight[seq]
        self.acked_events += await self.outbox.acknowledge(ack.ranges)
        self._wake.set()

    async def _hub_tier_changed(self, was: bool | None) -> None:
        """The tier came online: it may have subscribed after events were sent, so replay them."""
        if self.hub_online and was is not True:
            moved = self._requeue_inflight(resend=True)
            if moved:
                log.info("hub is online: replaying %d unacknowledged events", moved)
            self._wake.set()
            if self._on_hub_online is not None:
                await self._on_hub_online()

    def _on_one_hub_status(self, hub: str, status: HubStatus | None) -> None:
        """One of several hubs said online or offline (``None``: its status was cleared). A hub that was
        online and is not any more lost what it had taken and not acknowledged (a clean session), or left
        the events because it cannot commit them (its database away): send everything unacknowledged
        again now, to the hubs still up, rather than after the ack timeout."""
        was = self.hubs.pop(hub, None)
        if status is not None:
            self.hubs[hub] = status.online
        if was is True and not (status is not None and status.online):
            moved = self._requeue_inflight(resend=True)
            log.info("hub %s went offline: sending again the %d events not yet acknowledged", hub, moved)
            self._wake.set()
