"""``EvidenceStore`` on disk: the pictures the hub fetched from the edges, one JPEG file per read and kind
under ``<data_dir>/evidence/<checkpoint>/``, within a quota (the oldest files go first)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from protocols import topics

KINDS = ("scene", "plate")
Key = tuple[str, int, int, str]  # checkpoint, epoch, seq, kind
#: Requests for pictures are forgotten this long after they were made (a reply later is refused).
REQUEST_KEEP_S = 86400.0
#: At most this many requests are remembered (the oldest go first).
MAX_OPEN_REQUESTS = 10_000


class EvidenceFiles:
    """One hub's: the pictures in files, the requests for them in its memory (lost at a restart)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._requests: dict[str, tuple[str, int, int, float]] = {}
        self._deferred: dict[str, set[tuple[int, int]]] = {}

    def ask(self, request_id: str, checkpoint: str, epoch: int, seq: int, deferred: bool = False) -> None:
        now = time.time()
        self._requests[request_id] = (checkpoint, epoch, seq, now)
        while len(self._requests) > MAX_OPEN_REQUESTS or (
            self._requests and next(iter(self._requests.values()))[3] < now - REQUEST_KEEP_S
        ):
            self._requests.pop(next(iter(self._requests)))
        if deferred:
            self.defer(checkpoint, epoch, seq)

    def request_of(self, request_id: str) -> tuple[str, int, int] | None:
        asked = self._requests.get(request_id)
        return None if asked is None else asked[:3]

    def defer(self, checkpoint: str, epoch: int, seq: int) -> None:
        self._deferred.setdefault(checkpoint, set()).add((epoch, seq))

    def take_deferred(self, checkpoints: Iterable[str]) -> list[tuple[str, int, int]]:
        return [
            (cp, epoch, seq)
            for cp in sorted(set(checkpoints))
            for epoch, seq in sorted(self._deferred.pop(cp, ()))
        ]

    def answered(self, checkpoint: str, epoch: int, seq: int) -> None:
        deferred = self._deferred.get(checkpoint)
        if deferred is not None:
            deferred.discard((epoch, seq))

    # Paths from a checked checkpoint id and integers only.
    def path(self, key: Key) -> Path:
        checkpoint, epoch, seq, kind = key
        if not topics.valid_checkpoint_id(checkpoint) or kind not in KINDS:
            raise ValueError("bad evidence key")
        return self.root / checkpoint / f"{int(epoch)}-{int(seq)}-{kind}.jpg"

    def cached(self, key: Key) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except OSError:
            return None

    def keep(self, key: Key, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        self._trim()

    def _trim(self) -> None:
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("*/*.jpg")]
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
