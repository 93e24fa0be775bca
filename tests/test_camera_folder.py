"""Folder / FTP drop: files named with the read, taken exactly once, across a restart too."""

import json
import os
import re
import sqlite3
from datetime import datetime
from pathlib import Path

from edge import keys
from edge.app import create_app
from edge.settings import CameraSettings, EdgeSettings, MqttSettings
from edge.sources.folder import DEFAULT_PATTERN, read_from_name
from tests.support import until

SCENE = (Path(__file__).parent / "fixtures" / "cameras" / "dahua" / "snapshot.jpg").read_bytes()
#: The second pattern docs/cameras.md shows: lane first, colour last.
LANE_FIRST = r"(?P<lane>\d{2})_(?P<time>\d{17})_(?P<plate>[^_]+)_(?P<colour>[^_.]+)\.jpg"


def settings_for(tmp_path, broker, drop, keep_files=True):
    return EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=broker, reconnect_min_s=5),
        cameras=[
            CameraSettings(id="ftp1", kind="folder", path=str(drop), poll_s=0.05, keep_files=keep_files)
        ],
    )


def reads(settings):
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        return [
            json.loads(b) for (b,) in db.execute("SELECT body FROM outbox WHERE kind = 'read' ORDER BY seq")
        ]


def test_names_parse_with_both_documented_patterns():
    read = read_from_name("20261128101502123_鲁A12345_蓝_1.jpg", re.compile(DEFAULT_PATTERN, re.I))
    assert read.plate == "鲁A12345" and read.colour == "蓝" and read.lane == 1
    assert read.captured_at == datetime(2026, 11, 28, 10, 15, 2).timestamp() + 0.123
    assert read.event_id == "file:20261128101502123_鲁A12345_蓝_1.jpg"
    other = read_from_name("02_20261128101502123_冀B8K2L1_黄.jpg", re.compile(LANE_FIRST))
    assert other.plate == "冀B8K2L1" and other.lane == 2 and other.colour == "黄"
    assert read_from_name("IMG_0001.jpg", re.compile(DEFAULT_PATTERN)) is None
    assert (
        read_from_name("20261399101502123_鲁A12345_蓝_1.jpg", re.compile(DEFAULT_PATTERN)) is None
    )  # month 13


async def test_files_are_taken_exactly_once_across_a_restart(aiohttp_client, tmp_path, dead_broker_url):
    drop = tmp_path / "ftp"
    drop.mkdir()
    (drop / "20261128101502123_鲁A12345_蓝_1.jpg").write_bytes(SCENE)
    # An FTP client that wrote the name in GBK.
    with open(
        os.path.join(os.fsencode(drop), "20261128101503000_冀B8K2L1_黄_2.jpg".encode("gbk")), "wb"
    ) as f:
        f.write(SCENE)
    (drop / "IMG_0001.jpg").write_bytes(SCENE)  # no read in the name
    (drop / "20261128101504000_鲁Q8K2L1_蓝_1.jpg").write_bytes(SCENE[: len(SCENE) // 2])  # cut-off upload
    (drop / "20261128101505000_鲁C00001_蓝_1.jpg.part").write_bytes(SCENE)  # still uploading
    settings = settings_for(tmp_path, dead_broker_url, drop)
    client = await aiohttp_client(create_app(settings))
    service = client.app[keys.SERVICE]
    await until(
        lambda: (
            service.reads_total >= 3
            and (drop / "quarantine").exists()
            and len(list((drop / "quarantine").iterdir())) == 2
        ),
        timeout=15,
        what="three reads, two quarantined",
    )
    got = reads(settings)
    assert sorted(r["plate"] for r in got) == ["冀B8K2L1", "鲁A12345", "鲁Q8K2L1"]
    first = next(r for r in got if r["plate"] == "鲁A12345")
    assert first["colour"] == "blue" and first["lane"] == 1 and first["camera_id"] == "ftp1"
    assert sorted(p.name for p in (drop / "quarantine").iterdir()) == [
        "20261128101504000_鲁Q8K2L1_蓝_1.jpg",
        "IMG_0001.jpg",
    ]
    evidence, epoch = client.app[keys.EVIDENCE], client.app[keys.OUTBOX].epoch
    assert evidence.path(epoch, first["seq"], "snapshot").read_bytes() == SCENE
    cut = next(r for r in got if r["plate"] == "鲁Q8K2L1")
    assert evidence.path(epoch, cut["seq"], "snapshot") is None  # the read kept, its broken picture not
    health = service.cameras["ftp1"]
    assert health.reads == 3 and health.errors == 2
    await client.close()

    # The restart: the taken files are still there (keep_files); only a new one is taken.
    (drop / "20261128101600000_鲁A99999_蓝_2.jpg").write_bytes(SCENE)
    client = await aiohttp_client(create_app(settings))
    service = client.app[keys.SERVICE]
    await until(lambda: service.reads_total >= 1, timeout=15, what="the new file's read")
    # The old files were looked at in the same scans as the new one (they were stable just as long).
    await until(lambda: service.cameras["ftp1"].last_seen_at is not None, timeout=5)
    assert service.reads_total == 1
    assert [r["plate"] for r in reads(settings)][-1] == "鲁A99999" and len(reads(settings)) == 4
    await client.close()


async def test_taken_files_are_removed_and_a_growing_file_waits(aiohttp_client, tmp_path, dead_broker_url):
    from edge.sources.folder import FolderLedger, FolderSource
    from edge.sources.intake import Intake

    drop = tmp_path / "ftp"
    drop.mkdir()
    settings = settings_for(tmp_path, dead_broker_url, drop, keep_files=False)
    # The app runs no folder camera of its own here: the test drives the source's scans itself.
    client = await aiohttp_client(
        create_app(EdgeSettings(checkpoint="SD-DZ-001", data_dir=settings.data_dir, mqtt=settings.mqtt))
    )
    app = client.app
    ledger = FolderLedger(tmp_path / "ledger.db")
    ledger.start()
    try:
        source = FolderSource(settings.cameras[0], Intake(app[keys.SERVICE], app[keys.EVIDENCE]), ledger)
        name = drop / "20261128101502123_鲁A12345_蓝_1.jpg"
        name.write_bytes(SCENE[:1000])
        assert await source.scan() == 0  # first sight
        with name.open("ab") as f:
            f.write(SCENE[1000:])
        assert await source.scan() == 0  # it grew: not complete yet
        assert await source.scan() == 1 and not name.exists()
        # The same file again (a crash after the ledger, before the removal): removed, not taken.
        name.write_bytes(SCENE)
        st = name.stat()
        await ledger.record("ftp1", name.name, st.st_size, st.st_mtime_ns, epoch=1, seq=1, outcome="ok")
        assert await source.scan() == 0 and await source.scan() == 0 and not name.exists()
    finally:
        ledger.stop()
