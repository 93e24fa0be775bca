"""Work that must run once among the hubs sharing a store, and runs on whichever hub holds it.

A **duty** is a named piece of such work (the names below). The store says which hub holds each
(``central.record.stores.DutyStore``); :class:`DutyKeeper` asks it every ``cluster.duty_beat_s`` (a
*beat*), starts a duty's task when the beat says this hub holds it, and cancels the task as soon as this
hub cannot prove it still does: a beat that fails, or no beat answered within ``lease_s`` of being sent.
On SQLite (:class:`SoleDuties`) the hub is alone and holds every duty from its first beat to its stop.

A task cancelled on the event loop stops at its next ``await``; what it had handed to a thread (a purge)
runs to its end, which is why the store's ``fence`` guards the writes that must not happen twice. What
each duty tolerates is in docs/architecture.md ("Work that runs once").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from central.record.stores import DutyStore
from central.record.tx import Tx
from protocols.errors import CordonError

log = logging.getLogger(__name__)

RETENTION = "retention"
"""Purging the record past its retention (``central.record.retention``)."""
ESCALATION = "escalation"
"""Escalating intercept alerts nobody answered (``central.alerts.escalation``)."""
WEBHOOKS = "webhooks"
"""Delivering alerts and escalations to every webhook (``central.alerts.webhooks``)."""
FEED = "feed"
"""Publishing the field feed's deltas and retained version, in version order (``central.watchlists``)."""


#: With other hubs on the store: how often a duty's holder looks there for the work they committed (the
#: alerts and escalations webhooks lack, the feed versions not yet published).
POLL_S = 1.0


EVIDENCE = "evidence"
"""Asking the edges again for the evidence pictures deferred while they were offline (``central.alerts.evidence``)."""
REDISPATCH = "redispatch"
"""Dispatching the alerts a hub that is gone committed and left undispatched (``central.alerts.dispatch``)."""


def life(hub: str) -> str:
    """The duty only ``hub`` claims, held while it lives: other hubs tell by it that ``hub`` is gone (its
    alerts left undispatched are taken over, ``REDISPATCH``)."""
    return f"hub:{hub}"


def upstream(name: str) -> str:
    """The duty of polling one upstream source (``upstream[].name``)."""
    return f"upstream:{name}"


class DutyLost(CordonError):
    """A job fenced on a duty this hub no longer holds (another hub may be doing it now)."""


class SoleDuties:
    """``DutyStore`` of a hub alone on its store (SQLite: one hub per hub.db): every duty is its own."""

    lease_s = math.inf
    shared = False
    others = False
    company_at = -math.inf

    def __init__(self, hub: str) -> None:
        self.hub = hub

    def claim(self, duties: Iterable[str]) -> frozenset[str]:
        return frozenset(duties)

    def fence(self, tx: Tx, duty: str) -> None:
        """Nothing to wait for: no other hub runs a job on this store."""

    def release(self) -> None:
        """Nothing to give back."""


class DutyKeeper:
    """Runs each added duty while this hub holds it (``run`` is one long task; see the module doc)."""

    def __init__(self, store: DutyStore, beat_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.beat_s = beat_s
        self._clock = clock
        self._work: dict[str, Callable[[], Awaitable[None]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._held: frozenset[str] = frozenset()
        #: the monotonic time until which the last answered beat proves ``_held``
        self._until = -math.inf
        #: when this hub took each duty it holds (wall time), for the health route
        self.since: dict[str, float] = {}
        #: why the last beat failed (None while beats answer)
        self.last_error: str | None = None

    @property
    def hub(self) -> str:
        return self.store.hub

    @property
    def duties(self) -> list[str]:
        """Every duty this hub runs when it holds it."""
        return sorted(self._work)

    def add(self, duty: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work()`` while this hub holds ``duty`` (called again after each loss and retake)."""
        if duty in self._work:
            raise ValueError(f"duty {duty!r} added twice")
        self._work[duty] = work

    def holds(self, duty: str) -> bool:
        """This hub holds ``duty`` as of a beat that is still valid, and its task runs."""
        task = self._tasks.get(duty)
        return (
            duty in self._held
            and self._clock() < self._until
            and task is not None
            and not task.done()
            and not task.cancelling()
        )

    def held(self) -> list[str]:
        """The duties this hub holds now."""
        return [d for d in self.duties if self.holds(d)]

    async def run(self) -> None:
        """Beat, start and stop duties, until cancelled; then stop every duty and give them back."""
        loop = asyncio.get_running_loop()
        # One thread for the store's claims: a beat stuck on a dead connection holds up nothing else,
        # and the next is not sent before it returns.
        executor = ThreadPoolExecutor(1, thread_name_prefix="duties")
        names = list(self._work)
        pending: asyncio.Future[tuple[float, frozenset[str]]] | None = None
        next_beat = self._clock()
        try:
            while True:
                if pending is None and self._clock() >= next_beat:
                    pending = loop.run_in_executor(executor, self._beat, names)
                    next_beat = self._clock() + self.beat_s
                wake = min(next_beat, self._until) if self._until > self._clock() else next_beat
                timeout = max(0.0, wake - self._clock())
                if pending is not None:
                    await asyncio.wait({pending}, timeout=timeout)
                    if pending.done():
                        self._answered(pending)
                        pending = None
                else:
                    await asyncio.sleep(timeout)
                self._enforce()
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._tasks.clear()
            self._held, self._until = frozenset(), -math.inf
            release = loop.run_in_executor(executor, self.store.release)
            await asyncio.wait({release}, timeout=self.beat_s * 2)  # a stuck connection ends with the process
            executor.shutdown(wait=False)

    def _beat(self, names: list[str]) -> tuple[float, frozenset[str]]:
        sent = self._clock()  # the proof runs from when the claim left, not from when its answer came
        return sent, self.store.claim(names)

    def _answered(self, beat: asyncio.Future[tuple[float, frozenset[str]]]) -> None:
        try:
            sent, held = beat.result()
        except Exception as exc:
            if self.last_error is None:
                log.warning("hub %s cannot reach the store for its duties: %s", self.hub, exc)
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self._held, self._until = frozenset(), -math.inf
            return
        if self.last_error is not None:
            log.info("hub %s reaches the store for its duties again", self.hub)
        self.last_error = None
        self._held, self._until = held, sent + self.store.lease_s

    def _enforce(self) -> None:
        proved = self._clock() < self._until
        for duty, work in self._work.items():
            task = self._tasks.get(duty)
            running = task is not None and not task.done()
            if proved and duty in self._held:
                if not running:
                    if task is not None and not task.cancelled() and task.exception() is not None:
                        log.error(
                            "duty %s ended with an error; starting it again", duty, exc_info=task.exception()
                        )
                    self._tasks[duty] = asyncio.create_task(work(), name=f"duty-{duty}")
                    self.since[duty] = time.time()
                    log.info("hub %s took the duty %s", self.hub, duty)
            elif running and task is not None and not task.cancelling():
                task.cancel()
                self.since.pop(duty, None)
                log.warning("hub %s stopped the duty %s: it cannot prove it still holds it", self.hub, duty)
