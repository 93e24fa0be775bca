"""The handle of one open transaction of the hub's store, opaque to everything above ``record/``.

A store hands it to the job it runs (``IngestStore.ingest``, ``run``, ``read``) and takes it back in
its own methods; what it is (a SQLite connection with the day files attached, a PostgreSQL
connection) is the implementation's business. Code outside ``central/record/`` only passes it on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from protocols.errors import CordonError

T = TypeVar("T")


class Tx(Protocol):
    """One open transaction (write) or one read connection of the hub's store; use it only to pass on."""


class RunAgain(CordonError):  # noqa: N818 - a request, not an error
    """Raised by a store method inside a job: the store must do something outside any transaction first
    (on SQLite, attach a day file) and then runs the whole job again. A job lets it through untouched;
    turning it into a dead letter would lose the event. (A ``CordonError`` like every exception Cordon
    defines, though nobody ever sees it: the store always takes it back.)"""


class StoreUnavailable(CordonError, RuntimeError):
    """The store failed, not the job or its input: its server went away or refused the connection, a
    lock or deadlock broke the transaction off, the disk is full. Nothing of the job was kept, or (a
    commit cut off by the failure) it is not known whether it was: the caller tries again later (an
    edge sends its events again; the unique key absorbs what did commit). Never a dead letter."""


@dataclass(frozen=True, slots=True)
class PlateJob(Generic[T]):
    """A write job and the plates it may lock (``AlertStore.clone_sightings``), said before it runs. A
    store that runs a group of jobs in one transaction (PostgreSQL) locks the plates of the whole group
    first, in one statement and one order, before any job runs: two hubs' groups then never hold plates
    that the other waits for in the opposite order (a deadlock). Called like the job itself; a store
    that runs one writer alone (SQLite) just calls it."""

    run: Callable[[Any], T]
    plates: Collection[str]

    def __call__(self, tx: Any) -> T:
        return self.run(tx)
