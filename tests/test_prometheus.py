"""deploy/prometheus/: the scrape configuration parses, every alert rule is made to fire by its unit test
(promtool test rules, from Debian's prometheus package: make system-deps), and every metric a rule reads is
one the hub or the edge exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail(
            "promtool is missing: `make system-deps` installs Debian's prometheus package", pytrace=False
        )
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=PROM, timeout=120)


def rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "cordon.rules.yml").read_text(encoding="utf-8"))
    return [r for group in doc["groups"] for r in group["rules"]]


def test_the_rules_and_the_scrape_configuration_are_valid():
    done = promtool("check", "rules", "cordon.rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    done = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_fires_in_the_rule_tests():
    files = ["cordon.rules.test.yml", "cordon.certs.test.yml"]
    done = promtool("test", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    tests = [case for f in files for case in yaml.safe_load((PROM / f).read_text(encoding="utf-8"))["tests"]]
    fired = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t.get("exp_alerts")}
    quiet = {t["alertname"] for case in tests for t in case["alert_rule_test"] if not t.get("exp_alerts")}
    names = {r["alert"] for r in rules()}
    assert names - fired == set(), "rules no test makes fire"
    assert names - quiet == set(), "rules no test shows quiet before they should fire"


def test_every_metric_a_rule_reads_is_exposed():
    source = "".join(
        p.read_text(encoding="utf-8")
        for d in ("central", "edge", "runtime")
        for p in (ROOT / d).rglob("*.py")
    )
    for rule in rules():
        for name in set(re.findall(r"\b(cordon_[a-z_]+)", rule["expr"])):
            assert f'"{name}"' in source, f"{rule['alert']} reads {name}, which nothing exposes"
