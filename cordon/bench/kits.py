"""Accuracy of the cassette photo reader on generated photos with known truth.

``run(photos, seed)`` makes ``photos`` photos round-robin over every kit in the catalogue (so every
line convention), with the degradations in ``edge.kits.synth.random_conditions``; every seventh
photo has glare or a shadow crossing a T window (alternately). Each panel is one reading. Figures:

- ``confident_accuracy``: share of confident calls that match the truth (bar >= 0.995);
- ``coverage``: share of readings that were confident (bar >= 0.9 on photos without glare or shadow);
- ``confident_false_negatives``: confident "negative" where the truth is positive (bar: 0).

A photo the reader refuses (markers not found...) counts as uncertain readings for all its panels.
The fixed seed here was never used to tune the reader (that used seeds 1-3).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from edge.kits.catalogue import SHIPPED_CATALOGUE, load_catalogue
from edge.kits.reader import read_photo
from edge.kits.synth import Occlusion, Scene, make_photo, random_conditions, random_panels

SEED = 20250101
DEFAULT_CATALOGUE = SHIPPED_CATALOGUE
OCCLUSION_EVERY = 7
BARS = {"confident_accuracy": 0.995, "coverage_without_glare_or_shadow": 0.9, "confident_false_negatives": 0}


def _bucket(value: float, edges: list[float], unit: str = "", scale: float = 1.0) -> str:
    for lo, hi in zip(edges, edges[1:], strict=False):
        if value < hi:
            return f"{lo * scale:g}-{hi * scale:g}{unit}"
    return f"{edges[-2] * scale:g}-{edges[-1] * scale:g}{unit}"


def _contrast_bucket(truth_call: str, contrast: float) -> str:
    if truth_call == "invalid":
        return "no C line"
    if contrast == 0:
        return "no T line"
    return _bucket(contrast, [0.03, 0.05, 0.1, 0.2, 0.4, 0.6001], "%", 100)


class _Tally:
    def __init__(self) -> None:
        self.readings = self.confident = self.right = self.false_negatives = 0

    def add(self, confident: bool, right: bool, false_negative: bool) -> None:
        self.readings += 1
        self.confident += confident
        self.right += confident and right
        self.false_negatives += false_negative

    def figures(self) -> dict[str, Any]:
        return {
            "readings": self.readings,
            "confident_accuracy": round(self.right / self.confident, 5) if self.confident else None,
            "coverage": round(self.confident / self.readings, 5) if self.readings else None,
            "confident_false_negatives": self.false_negatives,
        }


def run(
    photos: int = 2000, seed: int = SEED, catalogue_path: str | Path = DEFAULT_CATALOGUE
) -> dict[str, Any]:
    catalogue = load_catalogue(catalogue_path)
    scenes = [Scene(kit) for kit in catalogue.kits]
    rng = random.Random(seed)
    overall, clear = _Tally(), _Tally()
    by: dict[str, dict[str, _Tally]] = defaultdict(lambda: defaultdict(_Tally))
    refused: dict[str, int] = defaultdict(int)
    uncertain_reasons: dict[str, int] = defaultdict(int)
    started = time.perf_counter()
    read_s = 0.0
    for i in range(photos):
        scene = scenes[i % len(scenes)]
        kit = scene.kit
        occlusion: Occlusion | None = None
        if i % OCCLUSION_EVERY == 0:
            occlusion = "glare" if (i // OCCLUSION_EVERY) % 2 == 0 else "shadow"
        panels = random_panels(rng, kit)
        conditions = random_conditions(rng, kit, occlusion)
        photo = make_photo(kit, rng, panels, conditions, scene)
        t0 = time.perf_counter()
        reading = read_photo(photo.data, kit)
        read_s += time.perf_counter() - t0
        if reading.error:
            refused[reading.error.split(":")[0]] += 1
        c = photo.conditions
        photo_buckets = {
            "tilt_deg": _bucket(c.tilt_deg, [0, 10, 20, 25.001]),
            "blur_sigma_px": _bucket(c.blur_sigma_px, [0, 0.5, 1, 1.5, 2.001]),
            "noise_sigma_255": _bucket(c.noise_sigma * 255, [0, 2, 4, 6, 8.001]),
            "gradient": _bucket(c.gradient, [0, 0.1, 0.2, 0.3, 0.4001], "%", 100),
            "glare_or_shadow": c.occlusion or "none",
            "convention": kit.convention,
            "kit": kit.model,
        }
        for j, truth in enumerate(photo.panels):
            machine = reading.panels[j].reading if reading.ok else None
            call = machine.call if machine else "uncertain"
            confident = call != "uncertain"
            right = call == truth.call
            false_negative = confident and call == "negative" and truth.call == "positive"
            if machine and not confident:
                uncertain_reasons[machine.reason.split("(")[0].split(":")[0].strip()] += 1
            overall.add(confident, right, false_negative)
            if c.occlusion is None:
                clear.add(confident, right, false_negative)
            buckets = dict(photo_buckets, t_line_contrast=_contrast_bucket(truth.call, truth.t_contrast))
            if c.occlusion is not None:
                buckets["occluded_panel"] = "this panel" if j == c.occluded_panel else "another panel"
            for dimension, bucket in buckets.items():
                by[dimension][bucket].add(confident, right, false_negative)
    elapsed = time.perf_counter() - started
    figures = overall.figures()
    clear_figures = clear.figures()
    bars = {
        "confident_accuracy>=0.995": (figures["confident_accuracy"] or 0) >= BARS["confident_accuracy"],
        "coverage_without_glare_or_shadow>=0.9": (clear_figures["coverage"] or 0)
        >= BARS["coverage_without_glare_or_shadow"],
        "confident_false_negatives==0": figures["confident_false_negatives"] == 0,
    }
    return {
        "bench": "kits",
        "seed": seed,
        "photos": photos,
        "kits": [k.model for k in catalogue.kits],
        "conventions": sorted(catalogue.conventions()),
        "overall": figures,
        "without_glare_or_shadow": clear_figures,
        "bars": bars,
        "pass": all(bars.values()),
        "by": {dim: {b: t.figures() for b, t in sorted(buckets.items())} for dim, buckets in by.items()},
        "photos_refused": dict(refused),
        "uncertain_reasons": dict(sorted(uncertain_reasons.items(), key=lambda kv: -kv[1])),
        "elapsed_s": round(elapsed, 1),
        "read_ms_per_photo": round(read_s / max(1, photos) * 1000, 1),
    }
