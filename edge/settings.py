"""Typed settings of one edge agent (``edge.toml``); every key is documented in docs/configuration.md."""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from runtime import config
from runtime import settings as shared

ENV_PREFIX = "CORDON_EDGE_"

_STRICT = shared.STRICT
MetricsSettings = shared.MetricsSettings


class HttpSettings(shared.HttpSettings, **_STRICT):
    """``[http]`` of an edge (the tablet app and the camera endpoints): the shared keys
    (runtime/settings.py) on port 8081, with smaller bodies."""

    port: int = 8081
    max_body_bytes: int = 1024 * 1024


class MqttSettings(shared.MqttSettings, **_STRICT):
    """``[mqtt]`` of an edge: the shared keys (runtime/settings.py; ``username`` empty means the checkpoint
    id, which the broker ACL expects), and how it sends its outbox."""

    max_inflight: int = 500
    batch_max: int = 200
    hold_ms: float = 20.0
    """While events are in flight, plain reads and passages wait for the hub's acknowledgement this long at
    most, so they travel together (Nagle's rule: edge/uplink.py ``_hold_s``); hits and gaps never wait.
    0: every event is sent as soon as there is room in flight."""
    ack_timeout_s: float = 10.0
    status_interval_s: float = 10.0


class OutboxSettings(msgspec.Struct, **_STRICT):
    max_bytes: int = 0
    """Quota on the bytes of unacknowledged events; past it the oldest plain reads are dropped
    (never hits) and the gap is reported to the hub. 0: no quota."""


CameraKind = Literal["json", "hikvision", "dahua", "folder", "viid"]


class SigningSettings(msgspec.Struct, **_STRICT):
    key_file: str = ""
    """This checkpoint's Ed25519 signing key (``cordon pki``: ``DIR/<checkpoint>/signing.key``); set:
    every message the edge publishes (events, status, its last will) is signed."""
    hub_public_key_file: str = ""
    """The hub's public signing key (``DIR/cordon-hub/signing.pub``): messages from the hub are checked."""
    required: bool = False
    """Drop any message from the hub (acks, alerts, feed deltas, accounts) that is unsigned or does not
    verify, so a compromised broker cannot forge an ack (which would delete unsent reads) or a delta."""


class CameraSettings(msgspec.Struct, **_STRICT):
    """One camera; which keys matter depends on ``kind`` (docs/cameras.md shows each kind's section)."""

    id: str
    kind: CameraKind = "json"
    token: str = ""
    """Push kinds (json, hikvision): the camera's secret, in X-Camera-Token, Bearer or ?token=."""
    username: str = ""
    """Push kinds: HTTP basic user for cameras that cannot send a token; dahua: the camera's login."""
    password: str = ""
    allow_from: list[str] = msgspec.field(default_factory=list)
    """Push kinds: source networks allowed to push (CIDR); empty: any address."""
    name: str = ""
    lane: int | None = None
    url: str = ""
    """dahua: the camera's base address, e.g. http://192.168.1.108."""
    auth: Literal["digest", "basic"] = "digest"
    """dahua: how the edge logs in to the camera."""
    channel: int = 1
    """dahua: the video channel whose snapshot is fetched."""
    path: str = ""
    """folder: the directory the camera uploads its pictures to (FTP root)."""
    pattern: str = ""
    """folder: regex over the file name with named groups time, plate, colour, lane; empty: the default."""
    poll_s: float = 1.0
    """folder: how often the directory is scanned."""
    keep_files: bool = False
    """folder: leave taken files in place (the ledger still takes each once) instead of removing them."""
    video: str = ""
    """Any kind: a video source (rtsp:// URL, device number, file) to grab an evidence frame from when a
    read comes without a picture."""
    stale_after_s: float = 300.0
    """A camera silent this long is reported stale in the status and warned about in the log."""
    device_id: str = ""
    """viid: the camera's 20-digit GA/T 1400 code (the ``DeviceID`` it registers with and puts in its
    records)."""
    via: str = ""
    """viid: the 20-digit code of the platform that registers and pushes this camera's records, when the
    camera does not push itself (its records still carry the camera's own ``device_id``)."""

    def __post_init__(self) -> None:
        if self.kind in ("json", "hikvision") and not self.token and not (self.username and self.password):
            raise ValueError(f"camera {self.id!r}: a push camera needs a token or a username and password")
        if self.kind == "dahua" and not self.url:
            raise ValueError(f"camera {self.id!r}: a dahua camera needs its url")
        if self.kind == "folder" and not self.path:
            raise ValueError(f"camera {self.id!r}: a folder camera needs its path")
        if self.kind == "viid":
            import re

            for key in ("device_id", "via"):
                value = getattr(self, key)
                if (value or key == "device_id") and not re.fullmatch(r"[0-9]{20}", value):
                    raise ValueError(f"camera {self.id!r}: {key} {value!r} is not a 20-digit GA/T 1400 code")
        import ipaddress

        for net in self.allow_from:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(
                    f"camera {self.id!r}: allow_from {net!r} is not an address or network"
                ) from None


class ViidSettings(msgspec.Struct, **_STRICT):
    """The edge as a GA/T 1400 receiving platform for ``viid`` cameras (docs/cameras.md)."""

    server_id: str = ""
    """This edge's own 20-digit code, as the devices are told it (``VIIDServerID``); empty: zeros."""
    realm: str = "cordon-viid"
    """The digest realm offered to devices (some platforms use their own 20-digit code)."""
    username: str = ""
    """Digest user name for cameras without their own ``username``; empty: the device's 20-digit code."""
    password: str = ""
    """Digest password for cameras without their own (``CORDON_EDGE_VIID__PASSWORD_FILE``)."""
    register_ttl_s: float = 300.0
    """A registration lapses after this long without a keepalive or another request."""
    nonce_ttl_s: float = 300.0
    """A digest nonce is answered ``stale`` after this long (the device retries with a fresh one)."""
    require_digest: bool = False
    """Every request, not only the registration, must carry a valid digest (devices that send one)."""
    utc_offset: str = "+08:00"
    """The devices' local time zone: GA/T 1400 times carry none."""
    max_body_bytes: int = 32 * 1024**2
    """Largest motor vehicle list (with its base64 pictures) taken in one request; larger is a 413."""

    def __post_init__(self) -> None:
        import re

        from protocols.viid import parse_offset

        if self.server_id and not re.fullmatch(r"[0-9]{20}", self.server_id):
            raise ValueError(f"viid server_id {self.server_id!r} is not a 20-digit GA/T 1400 code")
        parse_offset(self.utc_offset)


class EvidenceSettings(msgspec.Struct, **_STRICT):
    max_bytes: int = 2 * 1024**3
    """Quota on the evidence pictures on disk; past it the oldest are deleted first."""
    retention_days: float = 30.0
    """Pictures older than this are deleted."""
    thumb_max_px: int = 320
    """Longest side of the thumbnail that travels with hits and alerts."""
    purge_interval_s: float = 3600.0
    """How often the retention runs on schedule (each run is sent to the hub's audit trail)."""


class KitsSettings(msgspec.Struct, **_STRICT):
    id_secret_file: str = ""
    """File holding the deployment secret (at least 16 bytes) that keys the ID-number hash; the hub's
    ``kits.id_secret_file`` must hold the same. Empty: the tablet cannot save quick-test results."""
    catalogue_files: list[str] = msgspec.field(default_factory=list)
    """A province's own kit catalogue files, on top of the shipped one (docs/kits.md)."""
    max_photo_bytes: int = 512 * 1024**2
    """Quota on the kept cassette photos (data_dir/kits/photos); past it the oldest are deleted first."""
    max_upload_bytes: int = 15 * 1024**2
    """Largest cassette photo the tablet may upload."""


class NoPlateSettings(msgspec.Struct, **_STRICT):
    alert: bool = False
    """Raise a notify alert on the tablets for a vehicle without a readable plate."""
    priority: int = 20
    """Priority of that alert (0-100)."""


class HubSettings(msgspec.Struct, **_STRICT):
    url: str = ""
    """The hub's HTTP address, for watchlist snapshots (e.g. https://hub.example:8080); empty: deltas only."""
    token: str = ""
    """The bearer token the hub's [feed] token expects."""
    ca_file: str | None = None
    """For an https:// url: the CA that signed the hub's certificate (default: the system's CAs)."""
    cert_file: str | None = None
    """With key_file: the client certificate presented to the hub (the checkpoint's identity)."""
    key_file: str | None = None


class PassageSettings(msgspec.Struct, **_STRICT):
    window_s: float = 8.0


class TabletSettings(msgspec.Struct, **_STRICT):
    token: str = ""
    """Access code officers type on the tablet; empty means the tablet refuses every login."""
    recent_alerts: int = 200


class SimulatorSettings(msgspec.Struct, **_STRICT):
    enabled: bool = False
    vehicles_per_minute: float = 20.0
    cameras: list[str] = msgspec.field(default_factory=lambda: ["sim-lane-1", "sim-lane-2"])
    neighbour: str = "冀"
    watchlisted: list[str] = msgspec.field(default_factory=list)
    watchlisted_share: float = 0.02
    misread_rate: float = 0.05
    seed: int | None = None


class EdgeSettings(msgspec.Struct, **_STRICT):
    checkpoint: str
    data_dir: str = "./data/edge"
    name: str = ""
    time_zone: str = "Asia/Shanghai"
    """The time zone (IANA name) the tablets show every time in, whatever zone the tablet itself is set
    to: the hub's console shows times in its own ``time_zone`` (same default), so both say the same clock."""
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    mqtt: MqttSettings = msgspec.field(default_factory=MqttSettings)
    outbox: OutboxSettings = msgspec.field(default_factory=OutboxSettings)
    signing: SigningSettings = msgspec.field(default_factory=SigningSettings)
    hub: HubSettings = msgspec.field(default_factory=HubSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    cameras: list[CameraSettings] = msgspec.field(default_factory=list)
    passages: PassageSettings = msgspec.field(default_factory=PassageSettings)
    tablet: TabletSettings = msgspec.field(default_factory=TabletSettings)
    simulator: SimulatorSettings = msgspec.field(default_factory=SimulatorSettings)
    evidence: EvidenceSettings = msgspec.field(default_factory=EvidenceSettings)
    no_plate: NoPlateSettings = msgspec.field(default_factory=NoPlateSettings)
    kits: KitsSettings = msgspec.field(default_factory=KitsSettings)
    viid: ViidSettings = msgspec.field(default_factory=ViidSettings)

    def __post_init__(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"time_zone {self.time_zone!r} is not a known IANA time zone (e.g. Asia/Shanghai)"
            ) from None
        devices: set[str] = set()
        for cam in self.cameras:
            if cam.kind != "viid":
                continue
            if cam.device_id in devices:
                raise ValueError(f"camera {cam.id!r}: device_id {cam.device_id} is configured twice")
            devices.add(cam.device_id)
            if not (cam.password or self.viid.password):
                raise ValueError(f"camera {cam.id!r}: a viid camera needs a password here or in [viid]")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> EdgeSettings:
    """Read edge.toml, apply ``CORDON_EDGE_SECTION__KEY`` overrides, validate."""
    settings = config.load(EdgeSettings, path, os.environ if environ is None else environ, ENV_PREFIX)
    from protocols.topics import valid_checkpoint_id

    if not valid_checkpoint_id(settings.checkpoint):
        raise config.SettingsError(f"checkpoint {settings.checkpoint!r} is not a valid checkpoint id")
    return settings
