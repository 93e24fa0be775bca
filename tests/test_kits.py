"""Drug quick-test kits: catalogue, panel rules, ID hash, result flags, photo reader, card, analyzer exports."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import zlib
from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest

from edge.kits.analyzers import parse_csv, parse_export, parse_json
from edge.kits.card import ARUCO_DICT, card_pdf, render_card, write_card
from edge.kits.catalogue import load_catalogue
from edge.kits.reader import read_photo
from edge.kits.synth import Conditions, PanelTruth, Scene, make_photo
from protocols.kits import (
    KitError,
    KitResult,
    MachineReading,
    PanelResult,
    ScryptParams,
    Subject,
    call_panel,
    check_result,
    decode_catalogue,
    hash_id_number,
    id_hash_params,
    id_matches,
    id_number_problem,
    last4,
    merge_catalogues,
    overall_call,
    raises_alert,
    subject_from_id,
    t_line_for,
)

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE_PATH = ROOT / "edge" / "kits" / "kits.toml"
SECRET = b"deployment-secret-for-tests-0001"
FAST = ScryptParams(n=2**10, r=8, p=1)  # test speed only; the default is what deployments use
VALID_ID = "11010519491231002X"  # the standard's own example number


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(CATALOGUE_PATH)


@pytest.fixture(scope="module")
def scenes(catalogue):
    return {k.model: Scene(k) for k in catalogue.kits}


# ---- catalogue -------------------------------------------------------------------------------


def test_shipped_catalogue_covers_both_conventions(catalogue):
    assert len(catalogue.kits) >= 3
    assert catalogue.conventions() == {"competitive", "direct"}
    sal6 = catalogue.get("SD-SAL6")
    assert sal6.panel_codes() == ["MET", "MOR/OPI", "KET", "MDMA", "THC", "COC"]
    assert sal6.sample_type == "saliva" and sal6.read_min_minutes < sal6.read_max_minutes
    assert catalogue.get("SD-URI-MET").sample_type == "urine"


KIT_TOML = """
[[kits]]
model = "X1"
vendor = "V"
sample_type = "urine"
convention = "competitive"
read_min_minutes = 5
read_max_minutes = 10
width_mm = 60
height_mm = 20
[[kits.panels]]
drug = "MET"
cutoff_ng_ml = 1000
window = { x = 20, y = 2, width = 5, height = 16, c_mm = 4, t_mm = 11 }
"""


@pytest.mark.parametrize(
    "change, message",
    [
        (("t_mm = 11", "t_mm = 5"), "closer than"),
        (("x = 20", "x = 58"), "runs off"),
        (("read_max_minutes = 10", "read_max_minutes = 4"), "read window"),
        (('convention = "competitive"', 'convention = "sideways"'), "convention"),
        (('vendor = "V"', 'vendor = "V"\ncolour = "red"'), "unknown field"),
        (("c_mm = 4", "c_mm = 15.5"), "not inside"),
        (('drug = "MET"', 'drug = "met amphetamine"'), "drug"),
    ],
)
def test_bad_catalogue_is_refused_with_the_reason(change, message):
    decode_catalogue(KIT_TOML)  # the unchanged one is fine
    with pytest.raises(KitError, match=message):
        decode_catalogue(KIT_TOML.replace(*change))


def test_catalogue_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "province.toml"
    bad.write_text("[[kits]\nmodel = ", encoding="utf-8")
    with pytest.raises(KitError, match="province.toml: catalogue is not valid TOML"):
        load_catalogue(bad)
    with pytest.raises(KitError, match="listed twice"):
        decode_catalogue(KIT_TOML + KIT_TOML.replace("[[kits.panels]]", "[[kits.panels]]", 1))


def test_a_province_extends_and_overrides_the_catalogue(tmp_path, catalogue):
    extra = tmp_path / "province.toml"
    extra.write_text(KIT_TOML + KIT_TOML.replace('model = "X1"', 'model = "SD-URI-MET"'), encoding="utf-8")
    merged = load_catalogue(CATALOGUE_PATH, extra)
    assert merged.get("X1").vendor == "V"
    assert merged.get("SD-URI-MET").vendor == "V"  # replaced
    assert len(merged.kits) == len(catalogue.kits) + 1
    assert merge_catalogues(catalogue, decode_catalogue(KIT_TOML)).get("SD-SAL6") == catalogue.get("SD-SAL6")
    with pytest.raises(KitError, match="unknown kit model 'NOPE'"):
        merged.get("NOPE")


# ---- panel rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "convention, c, t, call",
    [
        ("competitive", True, True, "negative"),
        ("competitive", True, False, "positive"),
        ("competitive", False, True, "invalid"),
        ("competitive", False, False, "invalid"),
        ("direct", True, True, "positive"),
        ("direct", True, False, "negative"),
        ("direct", False, True, "invalid"),
        ("direct", False, False, "invalid"),
    ],
)
def test_panel_call_rules(convention, c, t, call):
    assert call_panel(convention, c, t) == call
    if call != "invalid":
        assert t_line_for(convention, call) is t


# ---- subject identity ------------------------------------------------------------------------


def test_id_number_check_digit():
    assert id_number_problem(VALID_ID) is None
    assert id_number_problem(VALID_ID.lower()) is None
    assert id_number_problem("110105 19491231 002X") is None
    assert "check character is 1, the first 17 digits give X" in id_number_problem(VALID_ID[:-1] + "1")
    assert "birth date 19491331" in id_number_problem("110105194913310025")
    assert "18" in id_number_problem("1101051949")
    assert "15-digit" in id_number_problem("110105491231002")
    assert "digits" in id_number_problem("11010519491231A02X")


def test_id_hash_is_keyed_slow_and_carries_its_parameters():
    h = hash_id_number(VALID_ID, SECRET, FAST)
    assert h.startswith("scrypt$n=1024,r=8,p=1$") and len(h.split("$")[-1]) == 64
    assert VALID_ID not in h and "002X" not in h
    assert hash_id_number(VALID_ID.lower(), SECRET, FAST) == h  # same person, same hash
    assert hash_id_number(VALID_ID, SECRET + b"x", FAST) != h  # another deployment cannot link it
    assert hash_id_number("110105194912310037", SECRET, FAST) != h
    assert id_hash_params(h) == FAST
    assert id_matches(VALID_ID, h, SECRET) and not id_matches("110105194912310037", h, SECRET)
    default = hash_id_number(VALID_ID, SECRET)
    assert id_hash_params(default).n >= 2**15  # the deployment default: ~70 ms a hash
    with pytest.raises(KitError, match="16 bytes"):
        hash_id_number(VALID_ID, b"short")
    with pytest.raises(KitError, match="not an ID hash"):
        id_hash_params("md5$abc")


def test_subject_keeps_last_four_and_flags_a_bad_number():
    s = subject_from_id("110105194912310021", SECRET, name="张三")
    assert s.id_last4 == "0021" == last4("110105194912310021")
    assert "check character" in s.id_problem and s.name == "张三"
    assert "110105194912310021" not in msgspec.json.encode(s).decode()
    assert subject_from_id(VALID_ID, SECRET).id_problem is None


# ---- result record ---------------------------------------------------------------------------

T0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


def result(catalogue, calls=None, **kw) -> KitResult:
    kit = catalogue.get(kw.pop("kit_model", "SD-SAL6"))
    calls = calls or ["negative"] * len(kit.panels)
    base = dict(
        result_id="r1",
        subject=Subject(id_hash="scrypt$n=1024,r=8,p=1$" + "0" * 64, id_last4="002X"),
        kit_model=kit.model,
        lot="L2409A",
        expiry=dt.date(2025, 9, 30),
        sample_type=kit.sample_type,
        panels=[
            PanelResult(
                drug=p.drug,
                officer_call=c,
                machine=MachineReading(call="uncertain", reason="T line borderline"),
            )
            for p, c in zip(kit.panels, calls, strict=True)
        ],
        sampled_at=T0,
        read_at=T0 + 10 * 60,
        officers=["370001", "370002"],
        source="manual",
    )
    base.update(kw)
    return KitResult(**base)


def test_result_in_date_and_in_window_is_not_flagged(catalogue):
    checked = check_result(result(catalogue), catalogue)
    assert not checked.kit_expired and not checked.outside_read_window
    assert not raises_alert(checked) and overall_call(checked.panels) == "negative"
    assert checked.panels[0].machine.call == "uncertain"  # the machine's reading is kept beside the call


def test_expired_kit_is_flagged_from_the_day_after_expiry(catalogue):
    on_the_day = dt.date.fromtimestamp(T0)
    assert not check_result(result(catalogue, expiry=on_the_day), catalogue).kit_expired
    assert check_result(result(catalogue, expiry=on_the_day - dt.timedelta(days=1)), catalogue).kit_expired


@pytest.mark.parametrize("minutes, outside", [(7.9, True), (8, False), (15, False), (15.5, True), (60, True)])
def test_reading_outside_the_read_window_is_flagged(catalogue, minutes, outside):
    checked = check_result(result(catalogue, read_at=T0 + minutes * 60), catalogue)
    assert checked.outside_read_window is outside


def test_positive_and_invalid_raise_alerts(catalogue):
    pos = result(catalogue, ["negative", "positive", "negative", "invalid", "negative", "negative"])
    assert overall_call(pos.panels) == "positive" and raises_alert(pos)
    inv = result(catalogue, ["negative", "invalid", "negative", "negative", "negative", "negative"])
    assert overall_call(inv.panels) == "invalid" and raises_alert(inv)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(officers=["370001"]), "two different officers"),
        (dict(officers=["370001", "370001"]), "two different officers"),
        (dict(needs_lab=True), "only a positive"),
        (dict(calls=["positive"] + ["negative"] * 5, needs_lab=True), "sealed sample numbers"),
        (
            dict(calls=["positive"] + ["negative"] * 5, needs_lab=True, sample_a="A1", sample_b="A1"),
            "different numbers",
        ),
        (dict(sample_type="urine"), "takes saliva"),
        (
            dict(
                kit_model="SD-URI-MET",
                calls=["negative"],
                sample_type="urine",
                panels=[PanelResult(drug="THC", officer_call="negative")],
            ),
            "do not match",
        ),
        (dict(read_at=T0 - 60), "read before"),
        (dict(source="photo"), "sha256"),
        (dict(kit_model="NOPE"), "unknown kit model"),
    ],
)
def test_result_breaking_the_procedure_is_refused(catalogue, change, message):
    change = dict(change)
    if change.get("kit_model") == "NOPE":
        r = msgspec.structs.replace(result(catalogue), kit_model="NOPE")
    else:
        r = result(catalogue, change.pop("calls", None), **change)
    with pytest.raises(KitError, match=message):
        check_result(r, catalogue)


def test_positive_for_the_lab_with_sealed_samples_passes(catalogue):
    r = result(
        catalogue, ["positive"] + ["negative"] * 5, needs_lab=True, sample_a="A-0091", sample_b="B-0091"
    )
    assert check_result(r, catalogue).needs_lab


# ---- the photo reader ------------------------------------------------------------------------

MILD = Conditions(tilt_deg=10, blur_sigma_px=0.6, noise_sigma=1.5 / 255, gradient=0.2)
MODERATE = Conditions(tilt_deg=18, blur_sigma_px=1.2, noise_sigma=4 / 255, gradient=0.3)


def truths(kit, pattern):
    """Panels from a pattern of T contrasts (None: no C line)."""
    out = []
    for panel, contrast in zip(kit.panels, pattern * len(kit.panels), strict=False):
        if contrast is None:
            out.append(PanelTruth(panel.drug, "invalid", 0.0, 0.3))
        else:
            out.append(PanelTruth(panel.drug, call_panel(kit.convention, True, contrast > 0), 0.7, contrast))
    return out


@pytest.mark.parametrize("model", ["SD-SAL6", "SD-URI-MET", "DW-5"])
@pytest.mark.parametrize("pattern", [[0.0, 0.4], [0.06, 0.0], [None, 0.25], [0.0]])
def test_reader_calls_every_convention_right(catalogue, scenes, model, pattern):
    kit = catalogue.get(model)
    panels = truths(kit, pattern)
    seed = zlib.crc32(f"{model}{pattern}".encode())
    photo = make_photo(kit, random.Random(seed), panels, MILD, scenes[model])
    reading = read_photo(photo.data, kit)
    assert reading.ok, reading.error
    assert reading.px_per_mm > 6
    got = [p.reading.call for p in reading.panels]
    assert got == [t.call for t in panels], [p.reading.reason for p in reading.panels]
    for p in reading.panels:
        assert p.reading.confidence > 0.99
    # Rougher light and camera: the reader may hand a panel to the officer, never call it wrong.
    photo = make_photo(kit, random.Random(seed), panels, MODERATE, scenes[model])
    reading = read_photo(photo.data, kit)
    assert reading.ok, reading.error
    for p, t in zip(reading.panels, panels, strict=True):
        assert p.reading.call in (t.call, "uncertain"), p.reading


@pytest.mark.parametrize("model", ["SD-SAL6", "DW-5"])
def test_a_faint_line_is_a_line_or_uncertain_never_no_line(catalogue, scenes, model):
    kit = catalogue.get(model)
    rough = Conditions(tilt_deg=22, blur_sigma_px=1.8, noise_sigma=8 / 255, gradient=0.4)
    wrong = []
    for seed in range(3):
        panels = truths(kit, [0.035])
        reading = read_photo(make_photo(kit, random.Random(seed), panels, rough, scenes[model]).data, kit)
        assert reading.ok
        wrong += [
            p.reading
            for p, t in zip(reading.panels, panels, strict=True)
            if p.reading.call not in (t.call, "uncertain")
        ]
    assert not wrong, wrong


def test_glare_on_a_window_makes_that_panel_uncertain(catalogue, scenes):
    kit = catalogue.get("SD-SAL6")
    panels = truths(kit, [0.0, 0.3])
    glare = dataclasses.replace(MODERATE, occlusion="glare", occluded_panel=2)
    reading = read_photo(make_photo(kit, random.Random(4), panels, glare, scenes[kit.model]).data, kit)
    assert reading.panels[2].reading.call == "uncertain"
    assert "glare" in reading.panels[2].reading.reason or "light" in reading.panels[2].reading.reason
    others = [p.reading.call for i, p in enumerate(reading.panels) if i != 2]
    assert all(c in (t.call, "uncertain") for c, t in zip(others, panels[:2] + panels[3:], strict=True))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"not a photo at all", "not a readable image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "not a readable image"),
    ],
)
def test_corrupt_bytes_are_an_error_result(catalogue, data, message):
    reading = read_photo(data, catalogue.get("DW-5"))
    assert not reading.ok and message in reading.error and reading.panels == []


def test_truncated_photo_and_missing_markers_are_error_results(catalogue, scenes):
    kit = catalogue.get("DW-5")
    photo = make_photo(kit, random.Random(9), truths(kit, [0.0]), Conditions(), scenes[kit.model]).data
    truncated = read_photo(photo[: len(photo) // 3], kit)
    assert not truncated.ok  # either unreadable or the lower markers are lost
    img = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    covered = img.copy()
    covered[: h // 2, : w // 2] = 90  # a hand over the top-left corner
    reading = read_photo(cv2.imencode(".png", covered)[1].tobytes(), kit)
    assert not reading.ok and "markers not found: [0]" in reading.error
    blank = cv2.imencode(".png", np.full((600, 800, 3), 200, np.uint8))[1].tobytes()
    assert "markers not found: [0, 1, 2, 3]" in read_photo(blank, kit).error


# ---- the card --------------------------------------------------------------------------------


def test_card_png_has_the_four_markers_and_pdf_is_well_formed(tmp_path, catalogue):
    png = write_card(tmp_path / "card.png", catalogue.kits, px_per_mm=6)
    img = cv2.imread(str(png))
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(ARUCO_DICT))
    assert sorted(detector.detectMarkers(img)[1].ravel().tolist()) == [0, 1, 2, 3]
    pdf = card_pdf(render_card(4))
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref_at:].startswith(b"xref")
    write_card(tmp_path / "card.pdf")
    assert (tmp_path / "card.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match=".png or .pdf"):
        write_card(tmp_path / "card.gif")


# ---- analyzer exports ------------------------------------------------------------------------

CSV_HEAD = "time,device_serial,test_id,kit_model,lot,expiry,sample_type,panel,result\n"


def csv_rows(
    test_id, calls, kit="SD-URI-MET", drugs=("MET",), sample="urine", time="2025-03-01T10:15:00+08:00"
):
    return "".join(
        f"{time},AX2-001,{test_id},{kit},L1,2026-01-31,{sample},{d},{c}\n"
        for d, c in zip(drugs, calls, strict=True)
    )


def test_analyzer_csv_keeps_good_tests_and_reports_bad_rows(catalogue):
    dw = catalogue.get("DW-5").panel_codes()
    text = (
        CSV_HEAD
        + csv_rows("T1", ["POS"])
        + csv_rows("T2", ["negative"] * 5, kit="DW-5", drugs=dw, sample="saliva")
        + csv_rows("T3", ["maybe"])
        + csv_rows("T4", ["negative"] * 4, kit="DW-5", drugs=dw[:4], sample="saliva")
        + csv_rows("T5", ["negative"], time="yesterday")
        + csv_rows("T6", ["negative"], kit="NOPE")
        + "2025-03-01T10:15:00+08:00,AX2-001,T7\n"
    )
    imported = parse_csv(text.encode(), catalogue)
    assert [t.test_id for t in imported.tests] == ["T1", "T2"]
    t1 = imported.tests[0]
    assert (
        t1.panels[0][0] == "MET" and t1.panels[0][1].call == "positive" and t1.expiry == dt.date(2026, 1, 31)
    )
    assert t1.read_at == dt.datetime.fromisoformat("2025-03-01T10:15:00+08:00").timestamp()
    problems = {p.where: p.reason for p in imported.problems}
    assert "line 8: result 'maybe' is not positive, negative or invalid" in problems["line 8"]
    assert "missing ['THC']" in problems["lines 9, 10, 11, 12"]
    assert "not ISO 8601" in problems["line 13"]
    assert "unknown kit model 'NOPE'" in problems["line 14"]
    assert "wrong number of fields" in problems["line 15"]
    assert len(problems) == 5


def test_analyzer_csv_without_the_header_is_refused(catalogue):
    imported = parse_csv(b"time,panel\n1,MET\n", catalogue)
    assert imported.tests == [] and "header lacks columns" in imported.problems[0].reason
    assert "not UTF-8" in parse_csv(b"\xff\xfe\xfa", catalogue).problems[0].reason


def test_analyzer_json_keeps_good_tests_and_reports_bad_ones(catalogue):
    sal6 = catalogue.get("SD-SAL6").panel_codes()
    good = {
        "test_id": "J1",
        "time": "2025-03-01T10:15:00+08:00",
        "kit_model": "SD-SAL6",
        "lot": "L9",
        "expiry": "2026-02-28",
        "sample_type": "saliva",
        "panels": {d: "negative" for d in sal6},
    }
    doc = {
        "device_serial": "AX2-777",
        "tests": [
            good,
            dict(good, test_id="J2", time="2025-03-01T10:15:00"),
            dict(good, test_id="J3", sample_type="urine"),
            dict(good, test_id="J4", expiry="someday"),
            dict(good, test_id="J5", panels=dict(good["panels"], LSD="negative")),
            "not an object",
        ],
    }
    imported = parse_export(json.dumps(doc).encode(), "json", catalogue)
    assert [t.test_id for t in imported.tests] == ["J1"]
    assert imported.tests[0].device_serial == "AX2-777"
    assert [d for d, _ in imported.tests[0].panels] == sal6
    problems = {p.where: p.reason for p in imported.problems}
    assert "no UTC offset" in problems["tests[1]"]
    assert "takes saliva" in problems["tests[2]"]
    assert "not a date" in problems["tests[3]"]
    assert "not on the kit ['LSD']" in problems["tests[4]"]
    assert "must be an object" in problems["tests[5]"]
    assert "not JSON" in parse_json(b"{", catalogue).problems[0].reason
    with pytest.raises(KitError, match="unknown analyzer export format"):
        parse_export(b"", "xml", catalogue)


# ---- command line and bench ------------------------------------------------------------------


def test_cli_card_read_and_bench(tmp_path, capsys, catalogue, scenes):
    from cordon.bench.kits import run
    from cordon.cli import build_parser

    def main(argv):  # the command's own function, without main()'s logging and signal set-up
        args = build_parser().parse_args(argv)
        return args.func(args)

    assert main(["kits", "card", "--out", str(tmp_path / "card.pdf"), "--kit", "DW-5"]) == 0
    assert (tmp_path / "card.pdf").read_bytes().startswith(b"%PDF")
    assert main(["kits", "card", "--out", str(tmp_path / "card.png"), "--kit", "NOPE"]) == 1
    assert "unknown kit model 'NOPE'" in capsys.readouterr().err
    kit = catalogue.get("SD-URI-MET")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(make_photo(kit, random.Random(3), truths(kit, [0.0]), MILD, scenes[kit.model]).data)
    capsys.readouterr()
    assert main(["kits", "read", str(photo), "--kit", "SD-URI-MET"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["error"] is None and out["panels"][0]["reading"]["call"] == "positive"
    (tmp_path / "junk.jpg").write_bytes(b"junk")
    assert main(["kits", "read", str(tmp_path / "junk.jpg"), "--kit", "SD-URI-MET"]) == 1
    assert "not a readable image" in json.loads(capsys.readouterr().out)["error"]
    result = run(photos=3, seed=1)
    assert result["overall"]["readings"] == 6 + 1 + 5
    assert set(result["by"]["convention"]) == {"competitive", "direct"}
    assert set(result["bars"]) == {
        "confident_accuracy>=0.995",
        "coverage_without_glare_or_shadow>=0.9",
        "confident_false_negatives==0",
    }
