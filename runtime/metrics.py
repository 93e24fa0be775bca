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


def certificate_metrics(files: Mapping[str, str | None]) -> list[Metric]:
    """When each named certificate ends and when each CRL's next update is due, as unix seconds, by
    ``key`` (the setting that names the file): what a rule needs to warn weeks before TLS stops."""
    from pathlib import Path

    from cryptography import x509

    certs = Metric(
        "cordon_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "when a configured certificate ends (unix seconds), by the setting that names it",
    )
    crls = Metric(
        "cordon_tls_crl_next_update_timestamp_seconds",
        "gauge",
        "when the configured CRL must be re-signed (unix seconds); past it OpenSSL refuses every client",
    )
    for key, name in sorted(files.items()):
        if not name:
            continue
        try:
            data = Path(name).read_bytes()
            if key.endswith("crl_file"):
                crl = x509.load_pem_x509_crl(data)
                if crl.next_update_utc is not None:
                    crls.add(crl.next_update_utc.timestamp(), key=key)
            else:
                certs.add(x509.load_pem_x509_certificate(data).not_valid_after_utc.timestamp(), key=key)
        except (OSError, ValueError):
            continue  # unreadable now: cordon doctor names it; the scrape goes on
    return [certs, crls]
