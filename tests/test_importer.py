"""Watchlist import and export: central.watchlists.files."""

from __future__ import annotations

import codecs
import pickle
from datetime import UTC, datetime

import msgspec
import pytest

from central.watchlists import files as importer
from central.watchlists.files import (
    COLUMNS,
    ImportRejected,
    Problem,
    diff_entries,
    entry_id_for,
    export_entries,
    parse_entries,
)
from protocols import plates
from protocols.feed import EntryDelete, EntryUpsert
from protocols.matching import Entry

JAN_2024 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def parse(text: str | bytes, fmt: importer.Format = "csv", **kw):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_entries(data, fmt, "stolen", created_by="alice", **kw)


def problems_of(text: str | bytes, fmt: importer.Format = "csv") -> list[Problem]:
    with pytest.raises(ImportRejected) as caught:
        parse(text, fmt)
    return caught.value.problems


def lines_of(problems: list[Problem]) -> list[int]:
    return [p.line for p in problems]


GOOD_CSV = (
    "plate,colour,vehicle_type,reason,case_ref,valid_from,valid_until\n"
    "京A12345,blue,car,stolen car,C-1,2024-01-01T00:00:00Z,1893456000\n"
    "粤B·6789Ｄ,蓝牌,,,,,\n"
    "\n"
    "沪C1234*,,truck,pattern,,,\n"
)


def test_good_csv():
    result = parse(GOOD_CSV)
    assert result.problems == []
    assert result.rows == 3
    first, second, third = result.entries
    assert first == Entry(
        entry_id="stolen:京A12345:blue:car",
        list_id="stolen",
        plate="京A12345",
        colour="blue",
        vehicle_type="car",
        reason="stolen car",
        case_ref="C-1",
        valid_from=JAN_2024,
        valid_until=1893456000.0,
        created_by="alice",
    )
    assert (second.plate, second.colour, second.entry_id) == ("粤B6789D", "blue", "stolen:粤B6789D:blue")
    assert (third.plate, third.vehicle_type, third.entry_id) == (
        "沪C1234*",
        "truck",
        "stolen:沪C1234*::truck",
    )


def test_header_names_are_forgiving_and_columns_optional():
    result = parse(" Plate ,REASON\n京A12345,x\n")
    assert [(e.plate, e.reason, e.colour) for e in result.entries] == [("京A12345", "x", None)]


def test_explicit_entry_id_is_kept():
    result = parse("plate,entry_id\n京A12345,case-7\n京A12346,\n")
    assert [e.entry_id for e in result.entries] == ["case-7", "stolen:京A12346"]


def test_good_json_array():
    data = msgspec.json.encode(
        [
            {"plate": "京A12345", "colour": "yellow", "valid_from": JAN_2024, "valid_until": None},
            {"plate": "京B1234?", "reason": "pattern", "valid_from": "2024-01-01T08:00:00+08:00"},
        ]
    )
    result = parse(data, "json")
    assert result.rows == 2
    assert [(e.plate, e.colour, e.valid_from) for e in result.entries] == [
        ("京A12345", "yellow", JAN_2024),
        ("京B1234?", None, JAN_2024),
    ]


def test_good_json_lines():
    text = '{"plate": "京A12345"}\r\n\n{"plate": "京A12346", "vehicle_type": "van"}\n'
    result = parse(text, "json")
    assert result.rows == 2
    assert [e.entry_id for e in result.entries] == ["stolen:京A12345", "stolen:京A12346::van"]


def test_bom_is_ignored():
    data = codecs.BOM_UTF8 + "plate\n京A12345\n".encode()
    assert [e.plate for e in parse(data).entries] == ["京A12345"]
    data = codecs.BOM_UTF8 + b'[{"plate": "A1"}]'
    assert [e.plate for e in parse(data, "json").entries] == ["A1"]


def test_every_kind_of_bad_csv_row_has_its_line():
    text = (
        "plate,colour,valid_from,valid_until,entry_id\n"  # 1
        "京A00001,,,,\n"  # 2 good
        ",,,,\n"  # 3 blank row of empty cells: skipped, not a problem
        " ,blue,,,\n"  # 4 empty plate
        "无牌,,,,\n"  # 5 no-plate word
        "京A00002,red,,,\n"  # 6 unknown colour
        "京A00003,,2024-02-01T00:00:00Z,2024-01-01T00:00:00Z,\n"  # 7 from after until
        "京A00004,,2024-01-01,,\n"  # 8 no offset
        "京A00005,,,next tuesday,\n"  # 9 not a time
        "京A00006,,,99999999999999,\n"  # 10 out of range
        "ABCDEFGHJKLMNPQRS,,,,\n"  # 11 17 characters
        "京A00001,,,,\n"  # 12 duplicate of line 2
        "京A00007,,,\n"  # 13 too few fields
        "**,,,,\n"  # 14 a pattern that matches everything
        f"京A00008,,,,{'x' * 200}\n"  # 15 id too long
        "蓝京A00009,yellow,,,\n"  # 16 colour word in the plate disagrees
    )
    problems = problems_of(text)
    assert lines_of(problems) == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    by_line = {p.line: p.reason for p in problems}
    assert "empty plate" in by_line[4]
    assert "no plate" in by_line[5]
    assert "red" in by_line[6]
    assert "after" in by_line[7]
    assert "offset" in by_line[8]
    assert "neither" in by_line[9]
    assert "range" in by_line[10]
    assert "16" in by_line[11]
    assert "duplicate" in by_line[12] and "line 2" in by_line[12]
    assert "field" in by_line[13]
    assert "literal" in by_line[14]
    assert "128" in by_line[15]
    assert "disagrees" in by_line[16]


def test_a_row_with_several_problems_reports_each():
    problems = problems_of("plate,colour,valid_from\n,purple,yesterday\n")
    assert lines_of(problems) == [2, 2, 2]


def test_line_numbers_follow_quoted_newlines():
    problems = problems_of('plate,reason\n京A00001,"two\nlines"\n京A00002,\n,x\n')
    assert lines_of(problems) == [5]


def test_sixteen_characters_is_fine_with_separators_around():
    result = parse("plate\nABCDEFGHJK-LMNPQR \n")
    assert [e.plate for e in result.entries] == ["ABCDEFGHJKLMNPQR"]
    assert lines_of(problems_of("plate\nABCDEFGHJK-LMNPQR-S\n")) == [2]


def test_header_problems_are_on_line_one():
    problems = problems_of("plate,colour,owner,speed\n京A12345,,,\n")
    assert lines_of(problems) == [1]
    assert "owner" in problems[0].reason and "speed" in problems[0].reason
    assert lines_of(problems_of("colour\nblue\n")) == [1]
    assert lines_of(problems_of("plate,plate\nA,B\n")) == [1]
    assert lines_of(problems_of("")) == [1]


def test_header_problems_reject_even_when_skipping_invalid_rows():
    with pytest.raises(ImportRejected):
        parse("plate,owner\n京A12345,x\n", skip_invalid=True)


def test_csv_syntax_error_rejects_the_file():
    problems = problems_of('plate,reason\n京A00001,"ok"\n京A00002,"broken"x\n')
    assert lines_of(problems) == [3]
    with pytest.raises(ImportRejected):
        parse('plate,reason\n京A00001,"never closed\n', skip_invalid=True)


def test_bad_json_items():
    data = msgspec.json.encode(
        [
            {"plate": "京A00001"},  # 1 good
            {"plate": 12345},  # 2
            "京A00002",  # 3
            {"plate": "京A00003", "owner": "x"},  # 4
            {"plate": "京A00004", "valid_from": True},  # 5
            {"colour": "blue"},  # 6
            {"plate": "京A00005", "reason": 7},  # 7
            {"plate": "京A00001"},  # 8 duplicate
        ]
    )
    assert lines_of(problems_of(data, "json")) == [2, 3, 4, 5, 6, 7, 8]


def test_bad_json_lines_are_text_lines():
    text = '{"plate": "京A00001"}\n\n{"plate": \n[1]\n{"plate": "京A00002", "colour": "mauve"}\n'
    assert lines_of(problems_of(text, "json")) == [3, 4, 5]


def test_malformed_json_array_is_one_problem():
    problems = problems_of('[\n{"plate": "A1"},\n{"plate": }\n]', "json")
    assert len(problems) == 1 and problems[0].line == 0
    assert "text line 3" in problems[0].reason


def test_empty_json_is_rejected_but_an_empty_array_is_an_empty_list():
    assert lines_of(problems_of("  \n", "json")) == [0]
    assert parse("[]", "json").entries == []


def test_non_utf8_is_one_clear_problem():
    data = "plate\n京A12345\n".encode() + "京A12346\n".encode("gb18030")
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].line == 3 and "UTF-8" in problems[0].reason
    assert len(problems_of(b'[{"plate": "\xff"}]', "json")) == 1


def test_reject_all_lists_every_problem():
    text = "plate,reason\n" + "".join(f"{'' if i % 2 else '京A' + str(10000 + i)},r\n" for i in range(200))
    with pytest.raises(ImportRejected) as caught:
        parse(text)
    assert len(caught.value.problems) == 100
    message = str(caught.value)
    assert "100 problem(s)" in message and "line 3: empty plate" in message and "and 50 more" in message


def test_skip_invalid_returns_good_entries_and_problems():
    result = parse("plate,colour\n京A00001,\n,\n京A00002,red\n京A00003,\n", skip_invalid=True)
    assert [e.plate for e in result.entries] == ["京A00001", "京A00003"]
    assert lines_of(result.problems) == [4]
    assert result.rows == 3


def test_rejection_pickles_with_its_problems():
    error = ImportRejected([Problem(2, "empty plate")])
    again = pickle.loads(pickle.dumps(error))
    assert again.problems == error.problems and str(again) == str(error)


def test_wildcards_are_kept():
    result = parse("plate\n京a·12*\n粤？1234５\n*B12?\n")
    assert [e.plate for e in result.entries] == ["京A12*", "粤?12345", "*B12?"]


def test_wildcards_survive_a_normalize_that_drops_them(monkeypatch):
    real = plates.normalize

    def dropping(raw: str) -> plates.Normalized:
        return real(raw.replace("*", "").replace("?", ""))

    monkeypatch.setattr(plates, "normalize", dropping)
    result = parse("plate\n京a·12*\n蓝牌粤?12-34\n")
    assert [(e.plate, e.colour) for e in result.entries] == [("京A12*", None), ("粤?1234", "blue")]


def test_ids_are_stable_across_imports():
    first = parse(GOOD_CSV).entries
    again = parse(GOOD_CSV.replace("alice", "bob")).entries
    assert [e.entry_id for e in first] == [e.entry_id for e in again]
    assert entry_id_for("L", "京A12345", None, None) == "L:京A12345"
    assert entry_id_for("L", "京A12345", "blue", None) == "L:京A12345:blue"
    assert entry_id_for("L", "京A12345", None, "car") == "L:京A12345::car"
    # Same plate, different colours: different entries.
    result = parse("plate,colour\n京A12345,blue\n京A12345,yellow\n")
    assert len({e.entry_id for e in result.entries}) == 2


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_round_trips(fmt):
    entries = [
        *parse(GOOD_CSV).entries,
        Entry(
            entry_id="custom-1",
            list_id="stolen",
            plate="京B1234?",
            reason='says "hi", twice\nover two lines',
            case_ref=" spaced ",
            valid_from=JAN_2024 + 0.25,
            valid_until=JAN_2024 + 86400,
            created_by="alice",
        ),
    ]
    data = export_entries(entries, fmt)
    assert parse(data, fmt).entries == entries
    if fmt == "csv":
        assert data.decode().splitlines()[0] == ",".join(COLUMNS)
        assert "2024-01-02T00:00:00+00:00" in data.decode()


def test_export_into_another_list_gets_that_lists_ids():
    data = export_entries(parse("plate\n京A12345\n").entries, "csv")
    other = parse_entries(data, "csv", "other", created_by="bob").entries
    assert [e.entry_id for e in other] == ["other:京A12345"]


def entry(entry_id: str, plate: str, **kw) -> Entry:
    return Entry(entry_id=entry_id, list_id="stolen", plate=plate, **kw)


def test_diff_add_change_remove():
    old = {e.entry_id: e for e in [entry("a", "A1"), entry("b", "B1"), entry("c", "C1"), entry("d", "D1")]}
    new = [entry("e", "E1"), entry("c", "C1", reason="now wanted"), entry("a", "A1"), entry("0", "01")]
    assert diff_entries(old, new) == [
        EntryDelete(entry_id="b"),
        EntryDelete(entry_id="d"),
        EntryUpsert(entry=entry("0", "01")),
        EntryUpsert(entry=entry("c", "C1", reason="now wanted")),
        EntryUpsert(entry=entry("e", "E1")),
    ]


def test_diff_unchanged_is_no_changes():
    entries = parse(GOOD_CSV).entries
    old = {e.entry_id: e for e in entries}
    assert diff_entries(old, entries) == []
    # Someone else importing the same file is no change either.
    reimported = parse_entries(GOOD_CSV.encode(), "csv", "stolen", created_by="bob").entries
    assert diff_entries(old, reimported) == []
    assert diff_entries({}, []) == []


def test_progress_is_reported_every_ten_thousand_rows():
    text = "plate\n" + "".join(f"A{i}\n" for i in range(25_000))
    seen: list[int] = []
    result = parse(text, progress=seen.append)
    assert seen == [10_000, 20_000]
    assert result.rows == 25_000 and len(result.entries) == 25_000
    seen.clear()
    parse("\n".join(f'{{"plate": "A{i}"}}' for i in range(10_000)), "json", progress=seen.append)
    assert seen == [10_000]


def test_unknown_format_is_a_value_error():
    with pytest.raises(ValueError, match="xml"):
        parse("<x/>", "xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="xml"):
        export_entries([], "xml")  # type: ignore[arg-type]
