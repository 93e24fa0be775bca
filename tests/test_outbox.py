import time

import pytest

from edge.outbox import PRIORITY_HIT, PRIORITY_READ, OutboxStore, decode_event
from protocols.messages import PlateRead


def read(plate="鲁A12345"):
    return PlateRead(seq=1, camera_id="c", captured_at=time.time(), plate=plate, plate_raw=plate, plate_valid=True)


@pytest.fixture
def outbox(tmp_path):
    box = OutboxStore(tmp_path / "outbox.db")
    box.start()
    yield box
    box.stop()


async def test_append_numbers_and_persists(outbox, tmp_path):
    events = await outbox.append([read("鲁A11111"), read("鲁A22222")], [PRIORITY_READ, PRIORITY_READ])
    assert [e.seq for e in events] == [1, 2]
    bodies = await outbox.load([1, 2])
    assert decode_event(bodies[2]).plate == "鲁A22222"
    epoch = outbox.epoch
    outbox.stop()
    again = OutboxStore(tmp_path / "outbox.db")
    again.start()
    try:
        assert again.epoch == epoch
        assert [p.seq for p in again.take_initial_pending()] == [1, 2]
        (third,) = await again.append([read()], [PRIORITY_READ])
        assert third.seq == 3
    finally:
        again.stop()


async def test_ack_deletes_ranges_and_sequence_never_goes_back(outbox, tmp_path):
    await outbox.append([read() for _ in range(5)], [PRIORITY_READ] * 5)
    assert await outbox.acknowledge([(1, 2), (4, 5)]) == 4
    assert (await outbox.stats()).depth == 1
    assert await outbox.acknowledge([(1, 5)]) == 1
    outbox.stop()
    again = OutboxStore(tmp_path / "outbox.db")
    again.start()
    try:
        (e,) = await again.append([read()], [PRIORITY_READ])
        assert e.seq == 6, "a sequence number is never reused, even after everything was acknowledged"
    finally:
        again.stop()


async def test_initial_pending_puts_hits_first(outbox, tmp_path):
    await outbox.append([read(), read(), read()], [PRIORITY_READ, PRIORITY_HIT, PRIORITY_READ])
    outbox.stop()
    again = OutboxStore(tmp_path / "outbox.db")
    again.start()
    try:
        assert [p.seq for p in again.take_initial_pending()] == [2, 1, 3]
    finally:
        again.stop()


async def test_new_disk_new_epoch(tmp_path):
    a, b = OutboxStore(tmp_path / "a.db"), OutboxStore(tmp_path / "b.db")
    a.start(), b.start()
    try:
        assert a.epoch != b.epoch and a.epoch > 0
    finally:
        a.stop(), b.stop()


async def test_a_cancelled_caller_does_not_stop_the_writer(outbox):
    import asyncio
    import threading

    started = threading.Event()

    def hold(db):  # keep the writer busy while the next job waits in the queue
        started.set()
        time.sleep(0.3)

    busy = outbox._writer.submit(hold)
    assert started.wait(5)
    first = asyncio.ensure_future(outbox.append([read("鲁A11111")], [PRIORITY_READ]))
    await asyncio.sleep(0.05)  # its job is queued now
    first.cancel()  # the camera hung up
    await asyncio.wrap_future(busy)
    (later,) = await asyncio.wait_for(outbox.append([read("鲁A22222")], [PRIORITY_READ]), 5)
    assert later.seq == 1, "the cancelled read was never written"
    assert (await outbox.stats()).depth == 1
