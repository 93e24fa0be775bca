"""``EvidenceStore`` on disk: the pictures the hub fetched from the edges, one JPEG file per read and kind
under ``<data_dir>/evidence/<checkpoint>/``, within a quota (the oldest files go first)."""

from __future__ import annotations

from pathlib import Path

from protocols import topics

KINDS = ("scene", "plate")
Key = tuple[str, int, int, str]  # checkpoint, epoch, seq, kind


class EvidenceFiles:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

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
