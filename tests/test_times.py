"""The one parser of "unix seconds or ISO 8601" times (protocols/times.py)."""

import datetime as dt
import time

import pytest

from protocols.errors import CordonError
from protocols.times import TimeError, parse_time

MOMENT = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


@pytest.mark.parametrize(
    "value",
    [
        MOMENT,
        int(MOMENT),
        str(int(MOMENT)),
        f" {MOMENT} ",
        "2026-12-01T08:00:00+08:00",
        "2026-12-01T00:00:00Z",
        "2026-12-01T00:00:00+00:00",
        "2026-12-01 08:00:00+08:00",
    ],
)
def test_unix_seconds_and_iso_8601_with_an_offset_are_the_same_moment(value):
    assert parse_time(value) == pytest.approx(MOMENT)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "infinity", float("nan"), float("inf")])
def test_nan_and_infinities_are_not_times(value):
    with pytest.raises(TimeError, match="not a finite time"):
        parse_time(value)


@pytest.mark.parametrize("value", ["2026-12-01T08:00:00", "2026-12-01"])
def test_a_naive_time_is_refused_by_default(value):
    with pytest.raises(TimeError, match="no UTC offset"):
        parse_time(value)


def test_a_naive_time_is_this_machines_zone_only_when_asked():
    text = "2026-12-01T08:00:00"
    assert parse_time(text, naive="local") == time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    assert parse_time("2026-12-01T08:00:00+08:00", naive="local") == pytest.approx(MOMENT)


@pytest.mark.parametrize("value", ["", "yesterday", "1 Dec 2026", "12/01/2026", "0x10", "1_000", True])
def test_what_is_neither_is_refused_quoting_it(value):
    with pytest.raises(TimeError) as caught:
        parse_time(value)
    assert repr(value if isinstance(value, bool) else value.strip()[:40]) in str(caught.value)


def test_a_time_error_is_a_cordon_error_and_a_value_error():
    assert issubclass(TimeError, CordonError) and issubclass(TimeError, ValueError)


def test_a_long_bad_value_is_quoted_short():
    with pytest.raises(TimeError) as caught:
        parse_time("x" * 5000)
    assert len(str(caught.value)) < 300
