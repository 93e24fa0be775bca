"""Folder / FTP drop: cameras that upload one JPEG per vehicle, the read in the file's name.

Many checkpoint cameras (Hikvision, Uniview, Dahua ITC) FTP a picture per vehicle with time, plate,
colour and lane in its name, e.g. ``20261128101502123_鲁A12345_蓝_1.jpg``. The edge scans the folder
(polling: it works on every file system, FTP servers' included, and a scan a second is cheap) and takes
a file once its size and modification time held still over one scan (the upload is complete).

Exactly once, across restarts: a SQLite ledger (``folder-ledger.db``) records every file taken, by
camera, name, size and modification time, right after its read is committed; a file in the ledger is
never taken again. A ledger rather than moving files to ``done/``: the upload folder may be read-only
to the edge or on another file system (a move is then a copy, not atomic), and a camera that re-uses a
name for a new picture (its counter wrapped) is still taken, because size or time differ. After the
ledger entry the file is removed (its picture is in the evidence store) unless ``keep_files``. The one
window left is a crash between the outbox commit and the ledger commit (milliseconds): that file is
taken again after the restart, with the same ``camera_event_id``, so the duplicate is recognisable.

A name the pattern does not match goes to ``quarantine/`` untouched. A name that parses with a picture
that does not decode is still recorded as a read, and the file goes to ``quarantine/`` too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlite_utils

from protocols import times
from protocols.messages import CameraRead
from runtime.sqlwriter import SqlWriter, WriterClosed

from ..service import ReadRejected
from ..settings import CameraSettings
from .intake import Intake, Pictures

log = logging.getLogger(__name__)

#: ``20261128101502123_鲁A12345_蓝_1.jpg``: time (ms optional), plate, colour, lane.
DEFAULT_PATTERN = r"(?P<time>\d{14}(?:\d{3})?)_(?P<plate>[^_]+)_(?P<colour>[^_.]*)_(?P<lane>\d{1,2})\.jpe?g"
QUARANTINE = "quarantine"
MAX_FILE_BYTES = 16 * 1024 * 1024
IGNORED_SUFFIXES = (".tmp", ".part", ".filepart", ".uploading")

SCHEMA = """CREATE TABLE IF NOT EXISTS taken (
    camera_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    taken_at REAL NOT NULL, epoch INTEGER, seq INTEGER, outcome TEXT NOT NULL,
    PRIMARY KEY (camera_id, name, size, mtime_ns))"""


class FolderLedger:
    """Which files each folder camera has taken; one writer for every folder camera of the edge."""

    def __init__(self, path: str | Path) -> None:
        self._writer = SqlWriter(path, name="folder-ledger", setup=lambda db: db.conn.execute(SCHEMA))
        self.path = Path(path)

    def start(self) -> None:
        self._writer.start()

    def stop(self) -> None:
        self._writer.stop()

    async def taken(self, camera_id: str, name: str, size: int, mtime_ns: int) -> bool:
        def job(db: sqlite_utils.Database) -> bool:
            return (
                db.conn.execute(
                    "SELECT 1 FROM taken WHERE camera_id=? AND name=? AND size=? AND mtime_ns=?",
                    (camera_id, name, size, mtime_ns),
                ).fetchone()
                is not None
            )

        return await self._writer.run(job)

    async def record(
        self,
        camera_id: str,
        name: str,
        size: int,
        mtime_ns: int,
        *,
        epoch: int | None,
        seq: int | None,
        outcome: str,
    ) -> None:
        def job(db: sqlite_utils.Database) -> None:
            db.conn.execute(
                "INSERT OR REPLACE INTO taken VALUES (?,?,?,?,?,?,?,?)",
                (camera_id, name, size, mtime_ns, time.time(), epoch, seq, outcome),
            )

        await self._writer.run(job)


@dataclass(frozen=True, slots=True)
class Seen:
    size: int
    mtime_ns: int


def file_name(raw: bytes) -> str:
    """A file name as text: UTF-8, else GBK/GB18030 (what Chinese FTP clients often write)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("gb18030", "replace")


def parse_time(text: str | None) -> float | None:
    """``YYYYMMDDhhmmss[mmm]`` in the camera's (this machine's) zone, or ISO 8601; None when absent."""
    if not text:
        return None
    if text.isdigit() and len(text) in (14, 17):
        moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S")
        return moment.timestamp() + (int(text[14:]) / 1000 if len(text) == 17 else 0.0)
    return times.parse_time(text, naive="local")


def read_from_name(name: str, pattern: re.Pattern[str]) -> CameraRead | None:
    """The read a file name carries, or None when the name does not match or does not make sense."""
    m = pattern.fullmatch(name)
    if m is None:
        return None
    groups = m.groupdict()
    try:
        captured = parse_time(groups.get("time"))
        lane = int(groups["lane"]) if groups.get("lane") else None
    except ValueError:
        return None
    if lane is not None and not 0 <= lane <= 99:
        return None
    plate = (groups.get("plate") or "")[:32]
    return CameraRead(
        plate=plate,
        colour=(groups.get("colour") or None) and groups["colour"][:32],
        captured_at=captured,
        lane=lane,
        event_id=f"file:{name}"[:128],
    )


class FolderSource:
    def __init__(self, camera: CameraSettings, intake: Intake, ledger: FolderLedger) -> None:
        self.camera = camera
        self.intake = intake
        self.ledger = ledger
        self.folder = Path(camera.path)
        self.pattern = re.compile(camera.pattern or DEFAULT_PATTERN, re.IGNORECASE)
        self._previous: dict[bytes, Seen] = {}
        self.taken = 0
        self.quarantined = 0

    async def run(self) -> None:
        """Scan until cancelled; a failing scan is logged and retried."""
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.intake.service.camera(self.camera.id).last_error = str(exc)[:200]
                log.exception("folder camera %s: scan failed", self.camera.id)
            await asyncio.sleep(self.camera.poll_s)

    async def scan(self) -> int:
        """Take every complete new file; return how many were taken."""
        now_seen = await asyncio.to_thread(self._list)
        stable = [name for name, seen in now_seen.items() if self._previous.get(name) == seen]
        self._previous = now_seen
        count = 0
        for raw in sorted(stable):
            if await self._take(raw, now_seen[raw]):
                count += 1
        return count

    def _list(self) -> dict[bytes, Seen]:
        out: dict[bytes, Seen] = {}
        try:
            entries = list(os.scandir(os.fsencode(self.folder)))
        except FileNotFoundError:
            raise RuntimeError(f"folder {self.folder} does not exist") from None
        for entry in entries:
            name = entry.name
            if name.startswith(b".") or name.lower().endswith(tuple(s.encode() for s in IGNORED_SUFFIXES)):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if st.st_size > 0:
                out[name] = Seen(st.st_size, st.st_mtime_ns)
        return out

    async def _take(self, raw: bytes, seen: Seen) -> bool:
        camera, service = self.camera, self.intake.service
        name = file_name(raw)
        path = os.path.join(os.fsencode(self.folder), raw)
        if await self.ledger.taken(camera.id, name, seen.size, seen.mtime_ns):
            if not camera.keep_files:
                await asyncio.to_thread(_remove, path)  # taken before a crash, not yet removed
            return False
        read = read_from_name(name, self.pattern)
        if read is None:
            service.camera(camera.id).errors += 1
            service.camera(camera.id).last_error = f"file name does not match the pattern: {name[:120]}"
            log.warning("folder camera %s: %r does not match the pattern; quarantined", camera.id, name)
            await self._quarantine(path, raw)
            return False
        if seen.size > MAX_FILE_BYTES:
            data = None
            error = f"file of {seen.size} bytes is too large to be a camera picture"
        else:
            data = await asyncio.to_thread(_read, path)
            error = None
        try:
            taken = await self.intake.take(read, camera, Pictures(snapshot=data))
        except ReadRejected as exc:
            service.camera(camera.id).last_error = str(exc)
            log.warning("folder camera %s: %r refused: %s; quarantined", camera.id, name, exc)
            await self._quarantine(path, raw)
            return False
        except (sqlite3.Error, WriterClosed) as exc:
            log.error(
                "folder camera %s: outbox write failed (%s); the file waits for the next scan", camera.id, exc
            )
            self._previous.pop(raw, None)
            return False
        error = error or taken.evidence_error
        await self.ledger.record(
            camera.id,
            name,
            seen.size,
            seen.mtime_ns,
            epoch=taken.epoch,
            seq=taken.read.seq,
            outcome=error or "ok",
        )
        self.taken += 1
        if error:
            log.warning(
                "folder camera %s: %r recorded as read %d; picture refused (%s); quarantined",
                camera.id,
                name,
                taken.read.seq,
                error,
            )
            await self._quarantine(path, raw)
        elif not camera.keep_files:
            await asyncio.to_thread(_remove, path)
        return True

    async def _quarantine(self, path: bytes, raw: bytes) -> None:
        target = os.path.join(os.fsencode(self.folder), QUARANTINE.encode())

        def move() -> None:
            os.makedirs(target, exist_ok=True)
            dest = os.path.join(target, raw)
            if os.path.exists(dest):
                dest = os.path.join(target, b"%d-" % time.time_ns() + raw)
            shutil.move(path, dest)

        self.quarantined += 1
        await asyncio.to_thread(move)


def _read(path: bytes) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None


def _remove(path: bytes) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
