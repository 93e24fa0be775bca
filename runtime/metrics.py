"""Prometheus text exposition (version 0.0.4) of a few counters and gauges; no client library needed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(slots=True)
class Metric:
    name: str
    kind: str  # "counter" or "gauge"
    help: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float | int | None, **labels: str) -> Metric:
        if value is not None:
            self.samples.append((labels, float(value)))
        return self


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(metrics: Iterable[Metric]) -> str:
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {m.help}")
        lines.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{m.name}{{{label_text}}} {value:g}" if label_text else f"{m.name} {value:g}")
    return "\n".join(lines) + "\n"


CONTENT_TYPE = "text/plain"
"""With ``charset=utf-8`` and ``version=0.0.4`` as Prometheus expects."""
