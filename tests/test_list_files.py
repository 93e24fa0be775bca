"""One parser of watchlist files: a row gets the same entry (and id) whether a start-up list file
(``watchlists.csv``) or an import into its list loaded it."""

from __future__ import annotations

import pytest

from central.watchlists.files import entry_id_for, parse_entries
from central.watchlists.index import WatchlistFileError, load_files, parse_csv

SOURCE = "lists.csv"
ROWS = [
    # plate, colour, vehicle_type, reason, case_ref, valid_from, valid_until
    ("鲁A12345", "", "", "线索", "", "", ""),
    ("鲁A12345", "blue", "", "同牌不同色", "", "", ""),
    ("鲁A12345", "yellow", "heavy truck", "", "案2026-9", "", ""),
    ("鲁B*88", "", "sedan", "", "", "2026-12-01T00:00:00+08:00", "1800000000"),
    (" 蓝鲁Ｃ·12345 ", "", "", "", "", "", ""),
]
ENTRY_COLUMNS = "plate,colour,vehicle_type,reason,case_ref,valid_from,valid_until"


def csv_text(with_list: bool) -> str:
    head = ("list,action,priority," if with_list else "") + ENTRY_COLUMNS
    lines = [head] + [(("涉毒,intercept,90," if with_list else "") + ",".join(row)) for row in ROWS]
    return "\n".join(lines) + "\n"


def test_a_file_loaded_both_ways_gives_identical_entries():
    at_start_up = parse_csv(csv_text(with_list=True), source=SOURCE)
    imported = parse_entries(csv_text(with_list=False).encode(), "csv", "涉毒", created_by=SOURCE)
    assert at_start_up.entries == imported.entries
    assert len(at_start_up.entries) == len(ROWS)
    assert [e.entry_id for e in at_start_up.entries] == [
        "涉毒:鲁A12345",
        "涉毒:鲁A12345:blue",
        "涉毒:鲁A12345:yellow:heavy truck",
        "涉毒:鲁B*88::sedan",
        "涉毒:鲁C12345:blue",  # the colour word in the plate is the entry's colour, both ways
    ]
    for e in at_start_up.entries:
        assert e.entry_id == entry_id_for(e.list_id, e.plate, e.colour, e.vehicle_type)
    assert at_start_up.entries[3].valid_from is not None and at_start_up.entries[3].valid_until == 1.8e9
    (wl,) = at_start_up.lists.values()
    assert (wl.list_id, wl.action, wl.priority, wl.source) == ("涉毒", "intercept", 90, SOURCE)


def test_a_start_up_file_refuses_what_an_import_refuses():
    bad = csv_text(with_list=True) + "涉毒,intercept,90,鲁D1,purple,,,,,\n涉毒,intercept,90,鲁D2,,,,,soon,\n"
    with pytest.raises(WatchlistFileError) as caught:
        parse_csv(bad, source=SOURCE)
    lines = [p.split(":")[0] for p in caught.value.problems]
    assert lines == [f"line {len(ROWS) + 2}", f"line {len(ROWS) + 3}"], caught.value.problems
    assert "unknown plate colour" in caught.value.problems[0]
    assert "neither unix seconds nor ISO 8601" in caught.value.problems[1]


def test_the_same_entry_twice_in_a_list_is_refused_naming_both_lines():
    text = "list,plate\nL,鲁A12345\nM,鲁A12345\nL,鲁A·12345\n"
    with pytest.raises(WatchlistFileError, match="duplicate entry_id '?L:鲁A12345'? \\(first on line 2\\)"):
        parse_csv(text, source=SOURCE)


def test_lists_must_agree_across_files():
    first = parse_csv("list,action,plate\nL,covert,鲁A12345\n", source="a.csv")
    with pytest.raises(WatchlistFileError, match="already has action covert"):
        parse_csv("list,action,plate\nL,notify,鲁A12346\n", source="b.csv", into=first)


def test_a_start_up_list_says_its_file_name_and_errors_name_the_path(tmp_path):
    """The console shows a list's source: the file's name, not the hub's folders; an operator reading a
    start-up error is told the whole path of the file to fix."""
    good = tmp_path / "lists" / "涉毒.csv"
    good.parent.mkdir()
    good.write_text(csv_text(with_list=True), encoding="utf-8")
    loaded = load_files([str(good)])
    assert {wl.source for wl in loaded.lists.values()} == {"涉毒.csv"}
    bad = tmp_path / "lists" / "bad.csv"
    bad.write_text("list,action,plate\nL,covert,\n", encoding="utf-8")
    with pytest.raises(WatchlistFileError, match=str(bad)):
        load_files([str(bad)])
