"""This hub's share of the edges' events among several hubs (``mqtt.share_group``): taken only while its
store commits.

A hub cut off from its database but not from the broker would go on being given its turn of the batches
and could acknowledge none: each would wait at its edge for the ack timeout, and its resend would land on
the cut-off hub again as often as not. So when the store's writer has failed (``writer_error``) for
``LEAVE_AFTER_S`` and a probe (an empty write job, through the same writer) fails too, the hub leaves the
events (``HubLink.take_events(False)``): the broker gives every batch to the other hubs, and the hub's
own status says offline, on which the edges send again at once what they had in flight. What the hub had
received and not committed stays unacknowledged; the jobs still queued at its writer fail or commit as the
store decides, and only what commits is acknowledged. Out, it probes the store every ``PROBE_S``; the first
probe that commits brings it back (``take_events(True)``). A hub alone never leaves: its persistent
session has the broker keep its events while it cannot commit (``central.lifecycle`` runs this only in a group).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: How long the store's writer must have been failing, with no commit since, before the hub leaves (and a
#: probe must fail then too): one failed job is a blip; an outage fails every job until it ends.
LEAVE_AFTER_S = 1.0
#: While it takes events, how often the hub looks at its writer (nothing but an attribute read).
CHECK_S = 0.25
#: While it is out, how often it probes its store.
PROBE_S = 0.5
#: A probe that has not committed by then has failed (a database that does not answer at all).
PROBE_TIMEOUT_S = 5.0


class WriterStore(Protocol):
    """What the share needs of the hub's store (``central.record.stores``)."""

    @property
    def writer_error(self) -> str | None: ...

    async def run(self, job: Callable[[Any], Any]) -> Any: ...


def _nothing(tx: object) -> None:
    """The probe: a write transaction with nothing in it, committed through the store's writer."""


class EventShare:
    """Takes this hub out of the shared events while its store cannot commit, and back in once it can.
    ``take(False)`` leaves, ``take(True)`` rejoins (``HubLink.take_events``)."""

    def __init__(
        self,
        store: WriterStore,
        take: Callable[[bool], None],
        *,
        leave_after_s: float = LEAVE_AFTER_S,
        check_s: float = CHECK_S,
        probe_s: float = PROBE_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self._store = store
        self._take = take
        self.leave_after_s = leave_after_s
        self.check_s = check_s
        self.probe_s = probe_s
        self.probe_timeout_s = probe_timeout_s
        self.taking = True
        #: Times this hub left the events since it started.
        self.left = 0
        #: Why it is out (the store's failure), while it is.
        self.reason: str | None = None
        self._out_since = 0.0

    async def run(self) -> None:
        """For the app's lifetime: watch the writer while in, probe while out."""
        failing_since: float | None = None
        while True:
            if self.taking:
                error = self._store.writer_error
                now = time.monotonic()
                if error is None:
                    failing_since = None
                elif failing_since is None:
                    failing_since = now
                elif now - failing_since >= self.leave_after_s:
                    failing_s, failing_since = now - failing_since, None
                    failed = await self.probe()  # one that commits clears ``writer_error``: stay
                    if failed is not None:
                        self._leave(failed, failing_s)
                        continue
                await asyncio.sleep(self.check_s)
            elif await self.probe() is None:
                self._rejoin()
            else:
                await asyncio.sleep(self.probe_s)

    async def probe(self) -> str | None:
        """Commit an empty job through the store's writer: None when it committed (a store on PostgreSQL
        then clears ``writer_error``), else why not."""
        try:
            await asyncio.wait_for(self._store.run(_nothing), self.probe_timeout_s)
        except TimeoutError:
            return f"no commit within {self.probe_timeout_s:g} s"
        except Exception as exc:  # StoreUnavailable, or whatever else keeps the writer from committing
            return str(exc) or type(exc).__name__
        return None

    def _leave(self, why: str, failing_s: float) -> None:
        self.taking = False
        self.left += 1
        self.reason = why
        self._out_since = time.monotonic()
        self._take(False)
        log.warning(
            "leaving the edges' events to the other hubs: the store has not committed for %.1f s (%s); "
            "the edges send again what this hub has not acknowledged",
            failing_s,
            why,
        )

    def _rejoin(self) -> None:
        self.taking = True
        self.reason = None
        self._take(True)
        log.info(
            "taking the edges' events again: the store commits (out for %.1f s)",
            time.monotonic() - self._out_since,
        )
