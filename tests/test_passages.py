from edge.passages import PassageBuilder, group_key
from protocols.messages import PlateRead


def read(seq, plate, camera="c1", at=100.0, confidence=90.0, valid=True, no_plate=False):
    return PlateRead(
        seq=seq,
        camera_id=camera,
        captured_at=at,
        plate=plate,
        plate_raw=plate,
        plate_valid=valid,
        confidence=confidence,
        no_plate=no_plate,
    )


def test_group_key_ignores_lookalikes_and_province():
    assert group_key("鲁A8B123") == group_key("鲁A88123") == group_key("冀A88123") == group_key("A88123")


def test_reads_of_one_vehicle_become_one_passage_with_the_best_read():
    b = PassageBuilder(window_s=5)
    assert b.observe(read(1, "鲁A8B123", "c1", confidence=70, valid=True), now=100) == []
    assert b.observe(read(2, "鲁A88123", "c2", confidence=95), now=101) == []
    assert b.expire(now=104) == []
    (p,) = b.expire(now=106.5)
    assert p.read_seqs == [1, 2] and p.best_seq == 2 and p.plate == "鲁A88123"
    assert p.cameras == ["c1", "c2"]
    assert len(b) == 0


def test_valid_plate_beats_higher_confidence_invalid_one():
    b = PassageBuilder(window_s=5)
    b.observe(read(1, "鲁A88123", confidence=60), now=100)
    b.observe(read(2, "鲁A8812", confidence=99, valid=False), now=100)  # different key: separate passage
    b.observe(read(3, "鲁A8B123", confidence=99, valid=False), now=100)
    passages = {tuple(p.read_seqs): p for p in b.flush()}
    assert passages[(1, 3)].best_seq == 1


def test_same_plate_after_the_window_is_a_new_passage():
    b = PassageBuilder(window_s=5)
    b.observe(read(1, "鲁A88123"), now=100)
    (closed,) = b.observe(read(2, "鲁A88123"), now=110)
    assert closed.read_seqs == [1]
    (second,) = b.flush()
    assert second.read_seqs == [2]


def test_no_plate_vehicle_is_its_own_passage_at_once():
    b = PassageBuilder(window_s=5)
    (p,) = b.observe(read(1, "", no_plate=True, valid=False), now=100)
    assert p.no_plate and p.read_seqs == [1]
    assert len(b) == 0
