"""Full evidence pictures at the hub, asked of the edge that kept them over MQTT.

Edges sit behind mobile-network NAT, so the hub never connects to one: it publishes an
EvidenceRequest on ``cordon/v1/cp/{cp}/evidence/request`` and waits (an asyncio future per
request_id) for the EvidenceReply on ``.../evidence/reply``. A picture that came is kept in the
hub's ``EvidenceStore`` (files under ``<data_dir>/evidence/`` within ``evidence.max_bytes``:
``central.record.evidencefiles``; on PostgreSQL rows every hub shares), so the next look is served from
there. A checkpoint that is offline, or silent past the wait, is asked again when it is online, by the hub
holding the evidence duty (the requests are in the store: ``EvidenceStore.defer``/``take_deferred``); the
caller gets a clear reason meanwhile. Every hub hears every reply: a reply to a request another hub made
(the store knows it) is kept for that hub, which finds the picture in the store while it waits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from central.record.evidencefiles import KINDS, Key
from central.record.stores import EvidenceStore
from protocols import signing, topics
from protocols.messages import SCHEMA_VERSION, DecodeError, EvidenceReply, EvidenceRequest, decode, encode

log = logging.getLogger(__name__)

__all__ = ["KINDS", "EvidenceBroker", "Outcome"]

MAX_OPEN_REQUESTS = 10_000
#: While a request waits for its reply, the store is looked at this often for a picture another hub kept
#: (the reply reaches every hub; the one that handles it first keeps it).
CACHE_POLL_S = 0.25


@dataclass
class Outcome:
    """What a look-up found: the picture, or why not (``pending``: asked, may come later)."""

    data: bytes | None = None
    error: str | None = None
    pending: bool = False


class EvidenceBroker:
    """Asks the edges for pictures and keeps what comes in ``store``."""

    def __init__(
        self,
        store: EvidenceStore,
        publish,
        edge_keys=None,  # noqa: ANN001 - callables
        signatures_required: bool = False,
        wait_s: float = 5.0,
    ) -> None:
        self.store = store
        self._publish = publish
        self._edge_keys = edge_keys
        self._signatures_required = signatures_required
        self.wait_s = wait_s
        self._waiting: dict[Key, list[asyncio.Future[Outcome]]] = {}
        #: this hub's own requests (the store knows every hub's)
        self._requests: dict[str, tuple[str, int, int]] = {}
        self._poked = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.replies = 0
        self.bad_replies = 0
        #: replies to another hub's request that this hub kept the picture of
        self.replies_for_others = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- asking --------------------------------------------------------------------------------
    async def _request(self, checkpoint: str, epoch: int, seq: int) -> None:
        request_id = "R" + secrets.token_hex(12)
        self._requests[request_id] = (checkpoint, epoch, seq)
        while len(self._requests) > MAX_OPEN_REQUESTS:
            self._requests.pop(
                next(iter(self._requests))
            )  # the oldest: its reply may still fill the cache late
        # In the store before it is published: a reply landing on another hub finds it there.
        await asyncio.to_thread(self.store.ask, request_id, checkpoint, epoch, seq)
        message = EvidenceRequest(
            v=SCHEMA_VERSION, request_id=request_id, epoch=epoch, seq=seq, kinds=list(KINDS)
        )
        self._publish(topics.evidence_request(checkpoint), encode(message))

    async def fetch(self, key: Key, online: bool) -> Outcome:
        data = await asyncio.to_thread(self.store.cached, key)
        if data is not None:
            return Outcome(data=data)
        checkpoint, epoch, seq, _ = key
        if not online:
            await asyncio.to_thread(self.store.defer, checkpoint, epoch, seq)
            return Outcome(
                pending=True, error="checkpoint offline; requested, will be fetched when it reconnects"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        try:
            await self._request(checkpoint, epoch, seq)
            deadline = loop.time() + self.wait_s
            while (left := deadline - loop.time()) > 0:
                try:
                    return await asyncio.wait_for(asyncio.shield(future), min(left, CACHE_POLL_S))
                except TimeoutError:
                    # The reply may have landed on another hub, which kept the picture for us.
                    data = await asyncio.to_thread(self.store.cached, key)
                    if data is not None:
                        return Outcome(data=data)
            await asyncio.to_thread(self.store.defer, checkpoint, epoch, seq)
            return Outcome(
                pending=True,
                error=f"no reply from the checkpoint within {self.wait_s:g} s; "
                "requested again, will be fetched when it reconnects",
            )
        finally:
            waiters = self._waiting.get(key, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiting.pop(key, None)

    def checkpoint_online(self, checkpoint: str) -> None:
        """A checkpoint came (back) online: the evidence duty looks for what it could not send before now,
        if this hub holds it (else the holder finds it at its next look, ``run_duty``)."""
        self._poked.set()

    async def run_duty(self, online: Callable[[], Awaitable[list[str]]], poll_s: float | None) -> None:
        """The evidence duty: ask again for the reads deferred of the checkpoints ``online()`` names, at
        once when a checkpoint comes online here, and every ``poll_s`` (None: only then)."""
        while True:
            self._poked.clear()
            due = await asyncio.to_thread(self.store.take_deferred, await online())
            if due:
                log.info("evidence: asking again for %d read(s) of checkpoints online", len(due))
            for checkpoint, epoch, seq in due:
                await self._request(checkpoint, epoch, seq)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), poll_s)

    # -- replies (MQTT thread -> loop) ---------------------------------------------------------
    def handle_threadsafe(
        self, topic: str, payload: bytes, received_at: float, retained: bool = False
    ) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._reply(topic, payload)))

    async def _reply(self, topic: str, payload: bytes) -> None:
        try:
            checkpoint = topics.parse(topic).checkpoint or ""
            key = self._edge_keys(checkpoint) if self._edge_keys is not None else None
            payload = signing.open_signed(payload, key, required=self._signatures_required)
            reply = decode(EvidenceReply, payload)
        except (topics.TopicError, signing.SignatureError, DecodeError) as exc:
            self.bad_replies += 1
            log.warning("evidence: refusing a reply on %s: %s", topic[:200], exc)
            return
        read = (checkpoint, reply.epoch, reply.seq)
        key: Key = (checkpoint, reply.epoch, reply.seq, reply.kind)
        asked = self._requests.get(reply.request_id)
        if asked is None:
            # Every hub hears every reply: one to another hub's request (known to the store) is kept here
            # unless a hub kept it already, and said nothing of.
            asked = await asyncio.to_thread(self.store.request_of, reply.request_id)
            if asked == read and reply.checkpoint == checkpoint:
                if reply.data is not None and await asyncio.to_thread(self.store.cached, key) is None:
                    if await self._keep(key, reply) is not None:
                        self.replies_for_others += 1
                        await asyncio.to_thread(self.store.answered, *read)
                return
        if asked is None or asked != read or reply.checkpoint != checkpoint:
            self.bad_replies += 1
            log.warning(
                "evidence: a reply from %s to no request of any hub (%s)", checkpoint, reply.request_id
            )
            return
        self.replies += 1
        log.info(
            "evidence: %s read %d/%d %s: %s",
            checkpoint,
            reply.epoch,
            reply.seq,
            reply.kind,
            reply.error or f"picture, {len(reply.data or '')} base64 chars",
        )
        outcome = Outcome(error=reply.error)
        if reply.data is not None:
            data = await self._keep(key, reply)
            outcome = (
                Outcome(data=data)
                if data is not None
                else Outcome(error="the checkpoint sent something that is not a JPEG")
            )
        elif not reply.error:
            outcome = Outcome(error="the checkpoint sent neither a picture nor a reason")
        await asyncio.to_thread(self.store.answered, *read)
        for future in self._waiting.pop(key, []):
            if not future.done():
                future.set_result(outcome)

    async def _keep(self, key: Key, reply: EvidenceReply) -> bytes | None:
        """Keep the picture a reply carries; None when it is no JPEG."""
        try:
            data = base64.b64decode(reply.data or "", validate=True)
        except (binascii.Error, ValueError):
            return None
        if data[:3] != b"\xff\xd8\xff":
            return None
        await asyncio.to_thread(self.store.keep, key, data)
        return data
