"""Full evidence pictures at the hub, asked of the edge that kept them over MQTT.

Edges sit behind mobile-network NAT, so the hub never connects to one: it publishes an
EvidenceRequest on ``cordon/v1/cp/{cp}/evidence/request`` and waits (an asyncio future per
request_id) for the EvidenceReply on ``.../evidence/reply``. A picture that came is kept in the
hub's ``EvidenceStore`` (files under ``<data_dir>/evidence/`` within ``evidence.max_bytes``:
``central.record.evidencefiles``), so the next look is served from there. A checkpoint that is
offline, or silent past the wait, is asked again when its status turns online; the caller gets a
clear reason meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
from dataclasses import dataclass

from central.record.evidencefiles import KINDS, Key
from central.record.stores import EvidenceStore
from protocols import signing, topics
from protocols.messages import SCHEMA_VERSION, DecodeError, EvidenceReply, EvidenceRequest, decode, encode

log = logging.getLogger(__name__)

__all__ = ["KINDS", "EvidenceBroker", "Outcome"]

MAX_OPEN_REQUESTS = 10_000


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
        self._requests: dict[str, tuple[str, int, int]] = {}
        #: Reads asked of a checkpoint that was offline or silent: asked again when it comes online.
        self._deferred: dict[str, set[tuple[int, int]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.replies = 0
        self.bad_replies = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- asking --------------------------------------------------------------------------------
    def _request(self, checkpoint: str, epoch: int, seq: int) -> None:
        request_id = "R" + secrets.token_hex(12)
        self._requests[request_id] = (checkpoint, epoch, seq)
        while len(self._requests) > MAX_OPEN_REQUESTS:
            self._requests.pop(
                next(iter(self._requests))
            )  # the oldest: its reply may still fill the cache late
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
            self._deferred.setdefault(checkpoint, set()).add((epoch, seq))
            return Outcome(
                pending=True, error="checkpoint offline; requested, will be fetched when it reconnects"
            )
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        self._request(checkpoint, epoch, seq)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.wait_s)
        except TimeoutError:
            self._deferred.setdefault(checkpoint, set()).add((epoch, seq))
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
        """A checkpoint came (back) online: ask again for what it could not send before."""
        deferred = sorted(self._deferred.pop(checkpoint, set()))
        if deferred:
            log.info("evidence: %s is online; asking again for %d read(s)", checkpoint, len(deferred))
        for epoch, seq in deferred:
            self._request(checkpoint, epoch, seq)

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
        asked = self._requests.get(reply.request_id)
        if asked is None or asked != (checkpoint, reply.epoch, reply.seq) or reply.checkpoint != checkpoint:
            self.bad_replies += 1
            log.warning("evidence: a reply from %s to no request of ours (%s)", checkpoint, reply.request_id)
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
        key: Key = (checkpoint, reply.epoch, reply.seq, reply.kind)
        outcome = Outcome(error=reply.error)
        if reply.data is not None:
            try:
                data = base64.b64decode(reply.data, validate=True)
            except (binascii.Error, ValueError):
                data = b""
            if data[:3] == b"\xff\xd8\xff":
                await asyncio.to_thread(self.store.keep, key, data)
                outcome = Outcome(data=data)
            else:
                outcome = Outcome(error="the checkpoint sent something that is not a JPEG")
        elif not reply.error:
            outcome = Outcome(error="the checkpoint sent neither a picture nor a reason")
        for future in self._waiting.pop(key, []):
            if not future.done():
                future.set_result(outcome)
