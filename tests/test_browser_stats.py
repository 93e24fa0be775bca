"""The console's statistics tab in a real headless Chromium against a real hub process, its statistics
seeded with known counts through the real ingest: the charts (Apache ECharts) hold exactly those counts,
read back from the chart library's own instances, and so does the table under each chart; counts of one
kind share one axis (reads apart, in their own panel on the same groups or days); the legend names the
series and invents nothing (no "max 1" where the table says 0); a tooltip shows on hover. In Chinese and
English, dark and light, at 1920×1080 and 1280×800; one hub and one browser for the module, one page per
size, the language and theme switched with the page's own buttons. Screenshot
docs/screenshots/console-stats.png (1920×1080) with CORDON_SCREENSHOTS=1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from central.ingest.listener import Recorder
from central.ingest.pipeline import Ingest
from central.intel.ring import SHIPPED, load_ring
from central.record.sqlite.store import HubStore
from central.watchlists.index import HubWatchlists
from protocols.messages import SCHEMA_VERSION, AlertOutcome, CheckpointStatus, encode
from tests.browser_checks import (
    SWITCHES,
    keys_shown_sync,
    open_console_sync,
    switch_sync,
    untranslated_text_sync,
)
from tests.support import Mosquitto, hub_service
from tests.test_hub_ingest import payload, read
from tests.test_kits_hub import kit_event

pytestmark = [pytest.mark.browser, pytest.mark.system]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TIMEOUT_MS = 45_000


def fill(path: Path) -> None:
    """Through the real ingest, before the hub starts: SD-DZ-001 3 reads and 2 positive tests (2 alerts, one
    answered as a misread), SD-JN-001 5 reads and no alert; SD-DZ-001's camera lane2 stale in one of four
    live statuses."""
    store = HubStore(path)
    store.start()
    try:
        ingest = Ingest(
            store,
            HubWatchlists(),
            publish=lambda t, p: None,
            listener=Recorder(),
        )
        done = ingest.handle(
            "cordon/v1/cp/SD-DZ-001/events",
            payload(
                [read(1), read(2), read(3), kit_event(4, "positive"), kit_event(5, "positive")],
                checkpoint="SD-DZ-001",
            ),
            time.time(),
        ).result(10)
        assert len(done.alerts) == 2
        answer = AlertOutcome(
            seq=6,
            alert_id=done.alerts[0].alert_id,
            outcome="misread",
            officer="li",
            acknowledged_at=time.time() + 40,
            alert_raised_at=time.time(),
        )
        ingest.handle(
            "cordon/v1/cp/SD-DZ-001/events", payload([answer], checkpoint="SD-DZ-001"), time.time()
        ).result(10)
        ingest.handle(
            "cordon/v1/cp/SD-JN-001/events",
            payload([read(i) for i in range(1, 6)], checkpoint="SD-JN-001"),
            time.time(),
        ).result(10)
        for stale in ([], ["lane2"], [], []):
            status = CheckpointStatus(
                v=SCHEMA_VERSION,
                checkpoint="SD-DZ-001",
                online=True,
                sent_at=time.time(),
                stale_cameras=stale,
            )
            ingest.handle("cordon/v1/cp/SD-DZ-001/status", encode(status), time.time()).result(10)
    finally:
        store.stop()


#: What fill() puts in, per checkpoint: reads, alerts, intercepted, positive tests; all of it today.
SEEDED = {"SD-DZ-001": (3, 2, 0, 2), "SD-JN-001": (5, 0, 0, 0)}
SERIES = {
    "zh": ["过车", "比中预警", "拦截", "快检阳性"],
    "en": ["Reads", "Hits", "Intercepted", "Positive tests"],
}

READ_CHARTS = """async () => {
  const echarts = await import('/static/vendor/echarts/echarts.esm.min.js');
  const read = (id) => {
    const chart = echarts.getInstanceByDom(document.getElementById(id));
    if (!chart) return null;
    const o = chart.getOption();
    return {
      series: o.series.map((s) => ({ id: s.id, name: s.name, axis: [s.xAxisIndex, s.yAxisIndex],
        data: s.data.map((d) => (d !== null && typeof d === 'object') ? d.value : d) })),
      x: o.xAxis.map((a) => a.data || null), y: o.yAxis.map((a) => a.data || null),
      legend: (o.legend[0] && o.legend[0].show !== false) ? o.series.map((s) => s.name) : [],
      tooltip: o.tooltip[0].trigger,
    };
  };
  const table = (css) => [...document.querySelectorAll(css + ' tr')].map((tr) => [...tr.cells].map((c) => c.innerText));
  return { bars: read('st-bars-chart'), daily: read('st-daily-chart'), outcomes: read('st-outcomes-chart'),
           details: table('#st-table table.st-rows:not(.st-stale)'), dailyTable: table('#st-daily-table'),
           outcomesTable: table('#st-outcomes-table'),
           legendText: [...document.querySelectorAll('#stats-view .st-echart text')].map((t) => t.textContent).join(' ') };
}"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    broker = Mosquitto(root / "mosquitto").start()
    service = hub_service(root / "hub", broker.url)
    (root / "hub" / "data").mkdir(parents=True, exist_ok=True)
    fill(root / "hub" / "data" / "hub.db")
    service.start()
    try:
        yield service
    finally:
        service.stop()
        broker.stop()


def open_stats(browser, hub, width, height):
    """The console signed in (Chinese, dark) on its statistics tab, drawn."""
    page, watch = open_console_sync(browser, hub.base, width, height, timeout_ms=TIMEOUT_MS)
    page.click("#tab-stats")
    page.wait_for_selector("#stats-view[data-drawn]", timeout=TIMEOUT_MS)
    return page, watch


def switch_stats(page, button, lang, theme) -> None:
    """A language switch redraws the statistics (a new ``data-drawn``); a theme switch recolours them."""
    before = page.get_attribute("#stats-view", "data-drawn")
    switch_sync(page, button, lang, theme, TIMEOUT_MS)
    if button == "#lang":
        page.wait_for_function(
            f"document.getElementById('stats-view').dataset.drawn !== '{before}'", timeout=TIMEOUT_MS
        )


def place(cp: str, lang: str) -> str:
    """A checkpoint's name on the ring in ``lang``: how the statistics name a group of one checkpoint."""
    c = next(c for c in load_ring(SHIPPED) if c["checkpoint"] == cp)
    return c["name"] if lang == "zh" else c["name_en"]


def check_charts(seen: dict, lang: str) -> None:
    names = SERIES[lang]
    keys = sorted(SEEDED)
    # per group: the chart's categories (the checkpoints by name) and values are the seeded counts and the table's
    bars = seen["bars"]
    assert bars["y"][0] == bars["y"][1] == [place(k, lang) for k in keys], "both panels on the same groups"
    by_id = {s["id"]: s for s in bars["series"]}
    for n, series in enumerate(("reads", "alerts", "intercepted", "positives")):
        assert by_id[series]["data"] == [SEEDED[k][n] for k in keys], series
        assert by_id[series]["name"] == names[n]
    assert by_id["reads"]["axis"] == [0, 0]
    assert {tuple(by_id[k]["axis"]) for k in ("alerts", "intercepted", "positives")} == {(1, 1)}, (
        "one shared axis"
    )
    header, *rows = seen["details"]
    table = {r[0].split()[-1]: r for r in rows}  # "德州京沪高速检查站 SD-DZ-001": the name, then the id
    assert {r[0] for r in rows} == {f"{place(k, lang)} {k}" for k in keys}
    for k in keys:  # the details table: reads, alerts, intercepted, positives in columns 1, 4, 6, 8
        cells = table[k]
        assert [int(cells[1]), int(cells[4]), int(cells[6]), int(cells[8].split(" ")[0])] == list(SEEDED[k])
    # day by day: every day zero but today, which holds the sums; the same in the table under it
    daily = seen["daily"]
    assert daily["x"][0] == daily["x"][1] and len(daily["x"][0]) == 7, "both panels on the same 7 days"
    sums = [sum(v[n] for v in SEEDED.values()) for n in range(4)]
    by_id = {s["id"]: s for s in daily["series"]}
    for n, series in enumerate(("reads", "alerts", "intercepted", "positives")):
        assert by_id[series]["data"] == [0] * 6 + [sums[n]], series
    assert by_id["reads"]["axis"] == [0, 0]
    assert {tuple(by_id[k]["axis"]) for k in ("alerts", "intercepted", "positives")} == {(1, 1)}
    header, *rows = seen["dailyTable"]
    assert [[int(c) for c in r[1:]] for r in rows] == [
        list(x) for x in zip(*(s["data"] for s in daily["series"]), strict=True)
    ]
    assert rows[-1][0].endswith(daily["x"][0][-1])
    # the legend names the series and nothing else (issue 20: "拦截 (最大 1)" where the table said 0)
    assert daily["legend"] == names and bars["legend"] == names
    assert "最大" not in seen["legendText"] and "max" not in seen["legendText"]
    assert daily["tooltip"] == bars["tooltip"] == "axis"
    # outcomes: one misread, in the chart and its table
    assert seen["outcomes"]["series"][0]["data"] == [0, 0, 1, 0]
    assert [r[1] for r in seen["outcomesTable"][1:]] == ["0", "0", "1", "0"]


@pytest.mark.parametrize("width,height", [(1920, 1080), (1280, 800)])
def test_charts_hold_the_seeded_counts_and_match_their_tables(hub, sync_browser, width, height):
    page, watch = open_stats(sync_browser, hub, width, height)
    try:
        for lang, theme, button in SWITCHES:  # switched with the page's own buttons
            switch_stats(page, button, lang, theme)
            seen = page.evaluate(READ_CHARTS)
            check_charts(seen, lang)
            # a tooltip on hover, with the series' names
            box = page.locator("#st-daily-chart").bounding_box()
            page.mouse.move(box["x"] + box["width"] - 30, box["y"] + box["height"] * 0.75)
            tip = page.locator("#st-daily-chart .st-tooltip")
            tip.wait_for(state="visible", timeout=TIMEOUT_MS)
            assert SERIES[lang][1] in tip.inner_text()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            # every figure in words of the page's language (the table said "2 (MET 2)" on the Chinese page)
            said = untranslated_text_sync(page) if lang == "zh" else keys_shown_sync(page)
            assert said == [], (lang, theme, said)
            if os.environ.get("CORDON_SCREENSHOTS") == "1" and (width, lang, theme) == (1920, "zh", "dark"):
                page.mouse.move(0, 0)
                tip.wait_for(state="hidden", timeout=TIMEOUT_MS)
                page.screenshot(path=str(SHOTS / "console-stats.png"))
            if os.environ.get("CORDON_MAP_SHOTS"):
                page.screenshot(path=f"{os.environ['CORDON_MAP_SHOTS']}-stats-{width}-{lang}-{theme}.png")
            page.mouse.move(0, 0)  # the tooltip goes, for the next variant's hover to show it anew
            tip.wait_for(state="hidden", timeout=TIMEOUT_MS)
        assert watch.problems() == [], watch.problems()
    finally:
        page.context.close()


def test_the_tables_language_switch_and_tabs(hub, sync_browser):
    page, watch = open_stats(sync_browser, hub, 1280, 800)
    try:
        assert page.inner_text("#tab-stats") == "统计"
        assert page.locator("main.console").is_hidden()
        row = page.locator('#st-misreads tr[data-kind="kit"]')
        assert "毒品快检" in row.inner_text() and "100.0%" in row.inner_text()
        # The table of every figure: SD-DZ-001's cameras up 75% of the samples, shown as low.
        dz = page.locator('#st-table tr[data-key="SD-DZ-001"]')
        cells = dz.locator("td").all_inner_texts()
        # (the reads in fill() are sent without their passages)
        assert cells[:9] == [
            "德州京沪高速检查站 SD-DZ-001",
            "3",
            "0",
            "0",
            "2",
            "40 s",
            "0",
            "2",
            "2 (甲基苯丙胺 2)",
        ]
        uptime = dz.locator("td.st-uptime")
        assert uptime.inner_text() == "75.0%" and "st-low" in uptime.get_attribute("class")
        assert page.locator('#st-table tr[data-key="SD-JN-001"] td.st-uptime').inner_text() == "–"
        assert "相机在线率" in page.text_content("#st-table")
        stale = page.locator('#st-table tr[data-camera="SD-DZ-001/lane2"] td').all_inner_texts()
        assert stale == ["德州京沪高速检查站", "lane2", "4", "75.0%"]
        before = page.get_attribute("#stats-view", "data-drawn")
        page.click("#lang")
        page.wait_for_function(
            f"document.getElementById('stats-view').dataset.drawn !== '{before}'", timeout=TIMEOUT_MS
        )
        assert page.inner_text("#tab-stats") == "Statistics"
        check_charts(page.evaluate(READ_CHARTS), "en")
        assert "drug quick test" in page.inner_text('#st-misreads tr[data-kind="kit"]')
        assert "Camera uptime" in page.text_content("#st-table")
        page.click("#tab-live")
        assert page.locator("#stats-view").is_hidden()
        assert page.locator("main.console").is_visible()
        assert watch.problems() == [], watch.problems()
    finally:
        page.context.close()
