"""The canonical plate form and the GA 36-2018 plate rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.plates import (
    NO_PLATE_WORDS,
    PROVINCES,
    Normalized,
    PlateCheck,
    PlateColour,
    PlateKind,
    check,
    expected_colours,
    normalize,
    parse_colour,
)

C = PlateColour
K = PlateKind


def test_provinces_are_the_31_province_characters() -> None:
    assert len(PROVINCES) == 31
    assert len(set(PROVINCES)) == 31
    assert "鲁" in PROVINCES and "台" not in PROVINCES


# ---------------------------------------------------------------------------------------------
# normalize


@pytest.mark.parametrize(
    ("raw", "plate", "colour"),
    [
        ("鲁A12345", "鲁A12345", None),
        # full-width ASCII
        ("鲁Ａ１２３４５", "鲁A12345", None),
        ("鲁ａ１２３４５", "鲁A12345", None),
        # lower case
        ("鲁a7xg66", "鲁A7XG66", None),
        # separators and whitespace
        ("鲁A·12345", "鲁A12345", None),
        ("鲁A•12345", "鲁A12345", None),
        ("鲁A.12345", "鲁A12345", None),
        ("鲁A-12345", "鲁A12345", None),
        ("鲁A_12345", "鲁A12345", None),
        ("鲁A 12345", "鲁A12345", None),
        ("鲁A\u300012345", "鲁A12345", None),
        ("鲁A\u30fb12345", "鲁A12345", None),
        ("鲁A\uff6512345", "鲁A12345", None),
        ("鲁A\u2027\u22c512345", "鲁A12345", None),
        ("  鲁A12345\t\r\n", "鲁A12345", None),
        ("鲁A\u200b12345\ufeff", "鲁A12345", None),  # zero-width space, BOM
        # colour words cameras prepend
        ("蓝皖A7XG66", "皖A7XG66", C.BLUE),
        ("蓝牌皖A7XG66", "皖A7XG66", C.BLUE),
        ("蓝色皖A7XG66", "皖A7XG66", C.BLUE),
        ("黄鲁Q12345", "鲁Q12345", C.YELLOW),
        ("黄牌鲁Q1234挂", "鲁Q1234挂", C.YELLOW),
        ("绿鲁AD12345", "鲁AD12345", C.GREEN),
        ("绿色鲁AD12345", "鲁AD12345", C.GREEN),
        ("黄绿鲁A12345D", "鲁A12345D", C.YELLOW_GREEN),
        ("黄绿牌鲁A12345D", "鲁A12345D", C.YELLOW_GREEN),
        ("黄绿色鲁A12345D", "鲁A12345D", C.YELLOW_GREEN),
        ("白鲁A1234警", "鲁A1234警", C.WHITE),
        ("黑粤Z1234港", "粤Z1234港", C.BLACK),
        ("黑色沪A1234领", "沪A1234领", C.BLACK),
        ("黑使123456", "使123456", C.BLACK),
        ("蓝 · 皖A-7XG66", "皖A7XG66", C.BLUE),
        # 黑 is also Heilongjiang: a bare 黑 is a colour only when another plate start follows
        ("黑A12345", "黑A12345", None),
        ("黑黑A12345", "黑A12345", C.BLACK),
        ("蓝黑A12345", "黑A12345", C.BLUE),
        ("黑牌黑A12345", "黑A12345", C.BLACK),
        # a colour word before a plate whose province was lost
        ("蓝A12345", "A12345", C.BLUE),
        # junk is kept (as a flagged read), never raises
        ("<script>alert(1)</script>", "<SCRIPT>ALERT(1)", None),
        ("x" * 100_000, "X" * 16, None),
        ("鲁A12345" * 10, ("鲁A12345" * 3)[:16], None),
        ("台A12345", "台A12345", None),
    ],
)
def test_normalize(raw: str, plate: str, colour: PlateColour | None) -> None:
    assert normalize(raw) == Normalized(plate, colour, False)


@pytest.mark.parametrize(
    "raw",
    sorted(NO_PLATE_WORDS)
    + ["无车牌", "无牌", "车牌", "未识别", "无", "unknown", "UNKNOWN", "Unknown", "noplate", "NoPlate"]
    + ["no_plate", "no-plate", "", " ", "\u3000", "·", "- -", "\t\n", "ＵＮＫＮＯＷＮ"]
    + ["蓝", "蓝牌", "黄色", "黄绿", "蓝无牌", "黄牌 未识别"],
)
def test_normalize_no_plate(raw: str) -> None:
    assert normalize(raw) == Normalized("", None, True)


def test_no_plate_words_include_what_cameras_send() -> None:
    assert {"无车牌", "无牌", "车牌", "未识别", "无", "unknown", "noplate", ""} <= NO_PLATE_WORDS


def test_normalize_output_is_a_fixed_point_for_the_examples() -> None:
    for raw in ("蓝蓝皖A7XG66", "黄绿黄鲁A12345", "黑黑黑A12345", "蓝" * 40 + "鲁A12345"):
        first = normalize(raw)
        assert normalize(first.plate).plate == first.plate


@pytest.mark.parametrize(
    "raw",
    ["鲁A\x0012345", "鲁A12345\x00", "\x00鲁A12345", "鲁A\x0712345", "鲁A\x1b12345", "鲁A\x7f12345"]
    + [f"鲁A123{chr(cp)}45" for cp in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)],
)
def test_control_characters_flag_the_read_but_keep_the_plate(raw: str) -> None:
    """A camera that sends a NUL or an escape is broken: its text is not a clean read, whatever the plate."""
    n = normalize(raw)
    assert n.plate == "鲁A12345" and not n.no_plate, "still matched as the plate it most likely is"
    assert n.problem is not None and "control character" in n.problem
    assert check(n.plate).valid, "the plate rules alone cannot tell: normalize must say it"


@pytest.mark.parametrize("raw", ["鲁A12345", "  鲁A12345\t\r\n", "蓝鲁Ａ·12345", "鲁A\u200b12345\ufeff"])
def test_a_clean_camera_text_has_no_problem(raw: str) -> None:
    n = normalize(raw)
    assert n.plate == "鲁A12345" and n.problem is None and check(n.plate).valid


def test_normalize_repeated_colour_words_keep_the_first() -> None:
    assert normalize("蓝黄鲁A12345") == Normalized("鲁A12345", C.BLUE, False)


@pytest.mark.parametrize("raw", [None, 12345, b"\xe9\xb2\x81A12345", ["鲁A12345"]])
def test_normalize_tolerates_non_str(raw: object) -> None:
    assert normalize(raw) == Normalized("", None, True)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# parse_colour


@pytest.mark.parametrize(
    ("value", "colour"),
    [
        ("blue", C.BLUE),
        ("BLUE", C.BLUE),
        ("Blue", C.BLUE),
        (" blue ", C.BLUE),
        ("yellow", C.YELLOW),
        ("Yellow", C.YELLOW),
        ("green", C.GREEN),
        ("Green", C.GREEN),
        ("white", C.WHITE),
        ("White", C.WHITE),
        ("black", C.BLACK),
        ("Black", C.BLACK),
        ("yellow_green", C.YELLOW_GREEN),
        ("yellowgreen", C.YELLOW_GREEN),
        ("yellowGreen", C.YELLOW_GREEN),
        ("YellowGreen", C.YELLOW_GREEN),
        ("yellow-green", C.YELLOW_GREEN),
        ("YELLOW GREEN", C.YELLOW_GREEN),
        ("蓝", C.BLUE),
        ("蓝色", C.BLUE),
        ("黄", C.YELLOW),
        ("黄色", C.YELLOW),
        ("绿", C.GREEN),
        ("绿色", C.GREEN),
        ("渐变绿", C.GREEN),
        ("黄绿", C.YELLOW_GREEN),
        ("黄绿色", C.YELLOW_GREEN),
        ("黄绿双拼", C.YELLOW_GREEN),
        ("白", C.WHITE),
        ("白色", C.WHITE),
        ("黑", C.BLACK),
        ("黑色", C.BLACK),
        ("ｂｌｕｅ", C.BLUE),
        # the enum's own values round-trip
        *[(c.value, c) for c in PlateColour],
    ],
)
def test_parse_colour(value: str, colour: PlateColour) -> None:
    assert parse_colour(value) is colour


@pytest.mark.parametrize(
    "value",
    [None, "", "other", "Other", "unknown", "Unknown", "未知", "其他", "red", "purple", "0", "0xff", "蓝绿"],
)
def test_parse_colour_unknown(value: str | None) -> None:
    assert parse_colour(value) is None


# ---------------------------------------------------------------------------------------------
# check

VALID = [
    # regular (blue small cars, yellow large vehicles)
    ("鲁A12345", K.REGULAR),
    ("皖A7XG66", K.REGULAR),
    ("京N88888", K.REGULAR),
    ("冀Z9ABCD", K.REGULAR),
    ("琼B0000Z", K.REGULAR),
    ("黑A12345", K.REGULAR),
    # suffix plates
    ("鲁Q1234挂", K.TRAILER),
    ("冀A2B3C挂", K.TRAILER),
    ("鲁A0001学", K.COACH),
    ("苏B1C23学", K.COACH),
    ("鲁A1234警", K.POLICE),
    ("豫AB123警", K.POLICE),
    ("粤Z1234港", K.HONG_KONG),
    ("粤ZAB12港", K.HONG_KONG),
    ("粤Z1234澳", K.MACAO),
    ("沪A1234领", K.CONSULATE),
    ("粤A0012领", K.CONSULATE),
    # new energy
    ("鲁AD12345", K.NEW_ENERGY_SMALL),
    ("鲁AF12345", K.NEW_ENERGY_SMALL),
    ("京ADF1234", K.NEW_ENERGY_SMALL),
    ("京ADZ1234", K.NEW_ENERGY_SMALL),
    ("鲁A12345D", K.NEW_ENERGY_LARGE),
    ("鲁B00000F", K.NEW_ENERGY_LARGE),
    # embassy
    ("使123456", K.EMBASSY),
    ("使001001", K.EMBASSY),
]


@pytest.mark.parametrize(("plate", "kind"), VALID)
def test_check_valid(plate: str, kind: PlateKind) -> None:
    assert check(plate) == PlateCheck(True, kind, None)


@pytest.mark.parametrize(("plate", "kind"), VALID)
def test_check_valid_with_each_expected_colour(plate: str, kind: PlateKind) -> None:
    for colour in expected_colours(kind):
        assert check(plate, colour) == PlateCheck(True, kind, None)


@pytest.mark.parametrize(("plate", "kind"), VALID)
def test_check_flags_every_unexpected_colour(plate: str, kind: PlateKind) -> None:
    for colour in set(PlateColour) - expected_colours(kind):
        result = check(plate, colour)
        assert result == PlateCheck(False, kind, f"colour {colour.value} does not fit a {kind.value} plate")


def test_check_colour_problem_wording() -> None:
    assert check("鲁AD12345", C.YELLOW) == PlateCheck(
        False, K.NEW_ENERGY_SMALL, "colour yellow does not fit a new_energy_small plate"
    )


@pytest.mark.parametrize(
    ("plate", "kind", "problem"),
    [
        ("", None, "empty plate"),
        ("台A12345", None, "unknown province character '台'"),
        ("A12345", None, "unknown province character 'A'"),
        ("<SCRIPT>", None, "unknown province character '<'"),
        ("鲁A1234", None, "length 6, expected 7 or 8"),
        ("鲁", None, "length 1, expected 7 or 8"),
        ("鲁A1234567", None, "length 9, expected 7 or 8"),
        ("鲁I12345", None, "authority letter 'I' is not used (I and O are left out)"),
        ("鲁O12345", None, "authority letter 'O' is not used (I and O are left out)"),
        ("鲁112345", None, "authority character '1' is not a letter A-Z"),
        ("鲁鲁12345", None, "authority character '鲁' is not a letter A-Z"),
        # regular
        ("鲁A12O45", K.REGULAR, "serial contains I or O"),
        ("鲁A1234I", K.REGULAR, "serial contains I or O"),
        ("鲁A12#45", K.REGULAR, "serial character '#' is not a letter or digit"),
        ("鲁A1234甲", None, "unknown last character '甲'"),
        # suffix plates
        ("鲁A12O4挂", K.TRAILER, "serial contains I or O"),
        ("鲁A1I34学", K.COACH, "serial contains I or O"),
        ("鲁A12?4警", K.POLICE, "serial character '?' is not a letter or digit"),
        ("京Z1234港", K.HONG_KONG, "港 plates start with 粤Z, got '京Z'"),
        ("粤A1234澳", K.MACAO, "澳 plates start with 粤Z, got '粤A'"),
        ("粤ZO234港", K.HONG_KONG, "serial contains I or O"),
        ("沪A12B4领", K.CONSULATE, "the four characters before 领 must be digits, got '12B4'"),
        # new energy
        ("鲁AD1234A", K.NEW_ENERGY_SMALL, "the last four characters must be digits, got '234A'"),
        ("鲁ADO1234", K.NEW_ENERGY_SMALL, "serial contains I or O"),
        ("鲁A1234AD", K.NEW_ENERGY_LARGE, "a large new-energy serial must be digits, got '1234A'"),
        ("鲁A123456", None, "8-character plate without the new-energy D or F"),
        ("鲁A1234挂5", None, "8-character plate without the new-energy D or F"),
        # embassy
        ("使12345", K.EMBASSY, "length 6, expected 7 for a 使 plate"),
        ("使12345A", K.EMBASSY, "the six characters after 使 must be digits, got '12345A'"),
    ],
)
def test_check_invalid(plate: str, kind: PlateKind | None, problem: str) -> None:
    assert check(plate) == PlateCheck(False, kind, problem)


def test_check_structure_problem_wins_over_colour() -> None:
    assert check("鲁A12O45", C.GREEN) == PlateCheck(False, K.REGULAR, "serial contains I or O")


def test_expected_colours_cover_every_kind() -> None:
    assert expected_colours(K.REGULAR) == {C.BLUE, C.YELLOW}
    assert expected_colours(K.NEW_ENERGY_SMALL) == {C.GREEN}
    assert expected_colours(K.NEW_ENERGY_LARGE) == {C.YELLOW_GREEN}
    assert expected_colours(K.TRAILER) == expected_colours(K.COACH) == {C.YELLOW}
    assert expected_colours(K.POLICE) == {C.WHITE}
    for kind in (K.HONG_KONG, K.MACAO, K.EMBASSY, K.CONSULATE):
        assert expected_colours(kind) == {C.BLACK}
    assert all(isinstance(expected_colours(kind), frozenset) for kind in PlateKind)


def test_normalized_camera_text_checks_as_the_plate_it_is() -> None:
    n = normalize("黄绿·鲁Ａ-１２３４５ｄ")
    assert n == Normalized("鲁A12345D", C.YELLOW_GREEN, False)
    assert check(n.plate, n.colour) == PlateCheck(True, K.NEW_ENERGY_LARGE, None)


# ---------------------------------------------------------------------------------------------
# Properties: untrusted text never raises, and normalizing twice changes nothing

_plate_like = st.text(
    alphabet=st.sampled_from(PROVINCES + "使挂学警港澳领蓝黄绿白黑牌色ABDFIOQZ0123456789aoi·.-_ \u3000Ａ１"),
    max_size=20,
)


@settings(max_examples=500)
@given(st.one_of(st.text(), _plate_like))
def test_normalize_and_check_never_raise(raw: str) -> None:
    n = normalize(raw)
    assert isinstance(n, Normalized)
    assert len(n.plate) <= 16
    assert n.no_plate == (n.plate == "")
    result = check(n.plate, n.colour)
    assert isinstance(result, PlateCheck)
    assert result.valid == (result.problem is None)
    assert check(raw).valid in (True, False)


@settings(max_examples=500)
@given(st.one_of(st.text(), _plate_like))
def test_normalize_is_idempotent(raw: str) -> None:
    plate = normalize(raw).plate
    again = normalize(plate)
    assert again.plate == plate
    assert again.no_plate == (plate == "")


@given(st.text(), st.sampled_from([*PlateColour, None]))
def test_check_never_raises_with_a_colour(plate: str, colour: PlateColour | None) -> None:
    result = check(plate, colour)
    assert result.valid == (result.problem is None)
