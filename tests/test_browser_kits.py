"""The quick-test flow in a real headless Chromium, against real hub, edge and Mosquitto processes:
on the tablet an officer types the ID number, picks the kit, uploads a cassette photo (made by
edge/kits/synth.py), sees the machine reading per panel, confirms each, names the second officer,
seals the samples of the positive and saves; the result reaches the hub (API and the console's panel), and the ID number is
nowhere in the edge's data."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from edge.kits.catalogue import load_catalogue
from edge.kits.state import SHIPPED_CATALOGUE
from edge.kits.synth import PanelTruth, make_photo
from tests.browser_checks import wall_screenshot
from tests.support import edge_service, get_json, hub_service, login, running, session, sign_in_page, until

pytestmark = [pytest.mark.browser, pytest.mark.system]
ID_NUMBER = "11010519491231002X"
TIMEOUT_MS = 45_000
MODEL = "SD-SAL6"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def cassette_photo(path: Path) -> list[str]:
    kit = load_catalogue(SHIPPED_CATALOGUE).get(MODEL)
    calls = ["negative"] * len(kit.panels)
    calls[0] = "positive"
    panels = [
        PanelTruth(drug=p.drug, call=c, c_strength=0.8, t_contrast=0.0 if c == "positive" else 0.6)
        for p, c in zip(kit.panels, calls, strict=True)
    ]
    path.write_bytes(make_photo(kit, random.Random(11), panels=panels).data)
    return calls


async def test_quick_test_on_the_tablet_reaches_the_hub(tmp_path, mosquitto):
    secret = tmp_path / "id-secret"
    secret.write_bytes(b"browser-kits-secret-0123456789")
    hub = hub_service(tmp_path / "hub", mosquitto.url)
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam1": "t1"},
        extra={"kits": {"id_secret_file": str(secret)}},
    )
    photo = tmp_path / "cassette.jpg"
    truth = cassette_photo(photo)
    hub.start()
    edge.start()
    with running(hub, edge):
        async with session() as http, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                tablet = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
                await sign_in_page(tablet, edge.base, "tablet-code")
                await tablet.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                assert await tablet.inner_text("#kits-open") == "毒品快检"  # Chinese by default

                await tablet.click("#kits-open")
                await tablet.wait_for_selector(
                    f"#kit-model option[value='{MODEL}']", state="attached", timeout=TIMEOUT_MS
                )
                await tablet.select_option("#kit-model", MODEL)
                await tablet.fill("#kit-id", ID_NUMBER)
                await tablet.fill("#kit-lot", "L2026-11")
                await tablet.fill("#kit-expiry", "2099-12-31")
                await tablet.fill("#kit-minutes", "10")
                await tablet.fill("#kit-officer2", "王警官 002")
                await tablet.set_input_files("#kit-photo", str(photo))
                await tablet.wait_for_selector("#kit-status .ok", timeout=TIMEOUT_MS)

                rows = await tablet.query_selector_all("#kit-panels li")
                assert len(rows) == len(truth)
                for index, call in enumerate(truth):
                    row = f"#kit-panels li:nth-child({index + 1})"
                    text = await tablet.inner_text(row)
                    assert "机器判读" in text  # the machine's reading is shown per panel
                    if "uncertain" in (await tablet.get_attribute(row, "class")):
                        assert "不确定，请确认" in text
                        assert await tablet.query_selector(row + " button.chosen") is None  # must be chosen
                    # The officer confirms (or corrects) every panel to the truth of the cassette
                    # (each click redraws the list, so rows are found again by position).
                    await tablet.click(f"{row} button[data-call={call}]")
                for row_index, call in enumerate(truth):
                    chosen = await tablet.get_attribute(
                        f"#kit-panels li:nth-child({row_index + 1}) button.chosen", "data-call"
                    )
                    assert chosen == call

                await tablet.wait_for_selector(
                    "#kit-lab:not([hidden])", timeout=TIMEOUT_MS
                )  # a positive: seals
                await tablet.check("#kit-needs-lab")
                await tablet.fill("#kit-seal-a", "A-778")
                await tablet.fill("#kit-seal-b", "B-778")
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await tablet.screenshot(path=str(SHOTS / "tablet-kits.png"))
                await tablet.click("#kit-save")
                await tablet.wait_for_selector("#kit-result .ok", timeout=TIMEOUT_MS)
                result_id = await tablet.get_attribute("#kit-result", "data-result-id")
                assert "阳性" in await tablet.inner_text("#kit-result")
                assert await tablet.input_value("#kit-id") == ""
                # the positive is an alert on the tablet too (the edge's alert log), the subject as its last four
                await tablet.click("#kit-close")
                await tablet.wait_for_selector(
                    "#alerts li .plate >> text=身份证尾号 …002X", timeout=TIMEOUT_MS
                )
                await tablet.click("#lang")  # English on request, the quick-test view included
                assert await tablet.inner_text("#kits-open") == "Drug test"
                await tablet.click("#kits-open")
                assert await tablet.inner_text("#kit-save") == "Save result"
                assert "positive" in await tablet.inner_text("#kit-panels")

                await login(http, hub.base, "console-code")

                async def at_hub():
                    rows = (await get_json(http, f"{hub.base}/api/v1/kit-results"))["kit_results"]
                    return [r for r in rows if r["result_id"] == result_id]

                (stored,) = await until(at_hub, timeout=40, what="the kit result at the hub")
                assert stored["result"] == "positive" and stored["checkpoint"] == "SD-DZ-001"
                assert stored["subject"]["id_last4"] == "002X" and stored["source"] == "photo"
                assert stored["officers"] == ["officer@SD-DZ-001", "王警官 002"]
                assert (stored["sample_a"], stored["sample_b"], stored["needs_lab"]) == (
                    "A-778",
                    "B-778",
                    True,
                )
                assert [p["officer_call"] for p in stored["panels"]] == truth
                assert all(p["machine"] is not None for p in stored["panels"])

                # ... and on the console's quick-test panel
                console = await (
                    await browser.new_context(viewport={"width": 1280, "height": 800})
                ).new_page()
                await sign_in_page(console, hub.base, "console-code")
                await console.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                await console.click("#kits-open")
                row = f"#kits-rows tr[data-result-id='{result_id}']"
                await console.wait_for_selector(row, timeout=TIMEOUT_MS)
                text = await console.inner_text(row)
                assert "SD-DZ-001" in text and "…002X" in text and "阳性" in text and "A-778" in text
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await wall_screenshot(console, str(SHOTS / "console-kits.png"))
                await console.select_option("#kits-result", "negative")
                await console.wait_for_selector(row, state="detached", timeout=TIMEOUT_MS)
            finally:
                await browser.close()
    for path in (tmp_path / "edge").rglob("*"):
        if path.is_file():
            assert ID_NUMBER.encode() not in path.read_bytes(), path
