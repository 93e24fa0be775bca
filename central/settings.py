"""Typed settings of the hub (``hub.toml``); every key is documented in docs/configuration.md."""

from __future__ import annotations

import ipaddress
import os
import socket
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from protocols import topics, viid
from protocols.folding import FOLD_WINDOW_S
from runtime import config
from runtime import settings as shared

ENV_PREFIX = "CORDON_HUB_"

_STRICT = shared.STRICT
MetricsSettings = shared.MetricsSettings


class UpstreamSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One upstream list: exactly one of ``url`` and ``path``."""

    name: str
    list_id: str
    url: str | None = None
    path: str | None = None
    format: Literal["csv", "json"] = "csv"
    interval_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    token: str | None = None  # sent as Authorization: Bearer when set


class HttpSettings(shared.HttpSettings, **_STRICT):
    """``[http]`` of the hub: the shared keys (runtime/settings.py), and how large an import may be,
    and the client certificates it asks for."""

    max_import_bytes: int = 512 * 1024 * 1024
    ca_file: str | None = None
    """Over HTTPS: ask clients for a certificate from this CA; an edge presenting one needs no feed.token."""
    crl_file: str | None = None
    """Revoked certificates (the CA's crl.pem), refused at the handshake."""
    proxy_protocol_from: list[str] = msgspec.field(default_factory=list)
    """The front doors' addresses (or networks, ``10.0.0.5``, ``10.0.0.0/29``) that put a PROXY protocol v2
    header before each connection they pass through (HAProxy's ``send-proxy-v2``): from them a connection
    must begin with one, and the client address it carries is the request's (login limits, the audit);
    a connection from anywhere else is taken as it comes. Empty: no PROXY protocol."""

    def __post_init__(self) -> None:
        for address in self.proxy_protocol_from:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(
                    f"http.proxy_protocol_from: {address!r} is not an IP address or network"
                ) from None


class MqttSettings(shared.MqttSettings, **_STRICT):
    """``[mqtt]`` of the hub: the shared keys (runtime/settings.py); its client id and user name (the
    ACL's hub user, also the CN of its client certificate) default to ``cordon-hub``."""

    client_id: str = ""
    """The MQTT client id, and with ``share_group`` this hub's one name among the others (its status topic
    ``cordon/v1/hub/<client_id>/status``, ``cluster.name``). Empty: ``cluster.name`` when ``share_group``
    is set, else ``cordon-hub`` (HubSettings fills it in)."""
    username: str | None = "cordon-hub"
    share_group: str = ""
    """Set, with the same value on every hub of a ring: the hubs share the edges' events (a shared
    subscription ``$share/<group>/...``, each hub on a clean session with its own ``client_id``) and each
    keeps its own status. Empty: the one hub of the ring, persistent session, as before."""

    def __post_init__(self) -> None:
        if self.share_group and not topics.valid_hub_id(self.share_group):
            raise ValueError(
                f"mqtt.share_group {self.share_group!r}: letters, digits, '-' and '_', at most 64"
            )
        if self.share_group and self.client_id and not topics.valid_hub_id(self.client_id):
            raise ValueError(
                f"mqtt.client_id {self.client_id!r} names this hub in its status topic when mqtt.share_group"
                " is set: letters, digits, '-' and '_', at most 64"
            )


class WatchlistSettings(msgspec.Struct, **_STRICT):
    csv: list[str] = msgspec.field(default_factory=list)
    """CSV files loaded at start-up (columns: plate, list, action, priority, reason, colour, vehicle_type)."""


class ConsoleSettings(msgspec.Struct, **_STRICT):
    token: str = ""
    """Access code for the command console; empty refuses every login."""
    recent_alerts: int = 100
    checkpoints_csv: str = ""
    """The ring's checkpoints for the console map (id, lat, lon, names); empty: the shipped ring."""
    escalate_after_s: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    """An intercept alert without an outcome this long is escalated (audited, highlighted, sounded)."""
    session_key_file: str = ""
    """A file holding the key that signs console sessions (32 bytes or more); the same file on every hub
    behind one front door, so a session signed by one hub is good at the others. Empty: a new key at
    every start (a restart signs everyone out)."""

    def session_key(self) -> bytes | None:
        """The key ``session_key_file`` holds (None: none named)."""
        if not self.session_key_file:
            return None
        try:
            key = Path(self.session_key_file).read_bytes().strip()
        except OSError as exc:
            raise config.SettingsError(
                f"console.session_key_file: cannot read {self.session_key_file}: {exc.strerror or exc}"
            ) from None
        if len(key) < 32:
            raise config.SettingsError(
                f"console.session_key_file: {self.session_key_file} holds {len(key)} bytes; 32 or more"
            )
        return key


class FeedSettings(msgspec.Struct, **_STRICT):
    token: str = ""
    """Bearer token edges present to fetch a feed snapshot; empty refuses every edge."""
    file_rebuild_versions: Annotated[int, msgspec.Meta(ge=1)] = 500
    """Write a new feed file once the newest one is this many feed versions behind (until then edges
    take the file and the deltas since it)."""
    file_rebuild_s: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    """...or once a change not yet in a file is this old."""


class PermitSettings(msgspec.Struct, **_STRICT):
    rule_id: str
    list_id: str
    """The permit list (kind "permit") whose entries are the licensed vehicles."""
    colours: list[str] = msgspec.field(default_factory=list)
    vehicle_types: list[str] = msgspec.field(default_factory=list)
    permit_name: str = "permit"
    action: Literal["intercept", "covert", "notify"] = "intercept"
    priority: int = 50


class ClockSettings(msgspec.Struct, **_STRICT):
    max_skew_s: float = 30.0
    """An edge whose clock differs from the hub's by more than this is flagged."""


class SigningSettings(msgspec.Struct, **_STRICT):
    key_file: str = ""
    """The hub's Ed25519 signing key (``cordon pki``: ``DIR/cordon-hub/signing.key``); set: every message
    the hub publishes is signed (acks, alerts, feed deltas and version, accounts, its status)."""
    keys_dir: str = ""
    """The PKI folder: each checkpoint's public key is ``<keys_dir>/<checkpoint>/signing.pub``."""
    required: bool = False
    """Refuse (dead-letter, never acknowledge) an edge's message that is unsigned or does not verify."""


class WebhookSettings(msgspec.Struct, **_STRICT):
    name: str
    url: str
    """Where alerts are POSTed as JSON, with the alert id in ``Idempotency-Key``."""
    token: str = ""
    """Sent as ``Authorization: Bearer``; empty sends none."""
    lists: list[str] = msgspec.field(default_factory=list)
    """List ids this hook takes; empty: every list."""
    actions: list[Literal["intercept", "covert", "notify"]] = msgspec.field(
        default_factory=lambda: ["intercept", "notify"]
    )
    """Covert alerts go out only to a hook that names ``covert`` here."""
    min_priority: int = 0
    escalations: bool = False
    """Also POST the escalations of the intercept alerts this hook's lists take (the shift commander's pager)."""
    timeout_s: float = 5.0
    retry_min_s: float = 1.0
    retry_max_s: float = 60.0
    give_up_after_s: float = 86400.0
    resume_window_s: float = 86400.0
    """After a restart, alerts this recent that the hook has no record of are sent again."""


class RecordSettings(msgspec.Struct, **_STRICT):
    utc_offset: Annotated[str, msgspec.Meta(pattern=r"^[+-](0\d|1[0-4]):[0-5]\d$")] = "+08:00"
    """The record's days (one file each) are cut at midnight in this offset."""
    retention_days: Annotated[int, msgspec.Meta(ge=1)] = 30
    """Plain reads and passages are kept this many days (today included); alerts and hits stay."""
    hits_retention_days: Annotated[int, msgspec.Meta(ge=1)] = 365
    """Alerts, their outcomes, edge hits, gap reports and dead letters are kept this many days."""
    purge_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    attached_max: Annotated[int, msgspec.Meta(ge=1, le=8)] = 4
    """Day files the writer keeps attached (SQLite allows 10 per connection)."""
    search_max_days: Annotated[int, msgspec.Meta(ge=1)] = 31
    """Longest time range one search of the record may span."""


class CloneSettings(msgspec.Struct, **_STRICT):
    enabled: bool = True
    min_confidence: Annotated[float, msgspec.Meta(ge=0, le=100)] = 90.0
    """Only reads at least this confident take part (misreads must not look like clones)."""
    max_speed_kmh: Annotated[float, msgspec.Meta(gt=0)] = 150.0
    road_factor: Annotated[float, msgspec.Meta(ge=1)] = 1.3
    """Road distance = straight line times this, where distances_csv names no distance."""
    same_time_window_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    checkpoints_csv: str = ""
    """Checkpoint coordinates (id, lat, lon, name_zh); empty: the ring shipped in central/intel/ring-checkpoints.csv."""
    distances_csv: str = ""
    """Road distances in km (from, to, km); empty: straight line times road_factor."""
    action: Literal["intercept", "covert", "notify"] = "notify"
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 40
    max_plates: Annotated[int, msgspec.Meta(ge=1)] = 2_000_000
    """Plates the in-memory index remembers (least recently seen, to within six hours, forgotten first)."""
    warm_hours: Annotated[float, msgspec.Meta(ge=0)] = 24.0
    """At start-up the index learns the record's last this many hours, in the background (0: start cold)."""
    misread_memory_s: Annotated[float, msgspec.Meta(ge=0)] = 10800.0
    """A conflict that a misread of a look-alike plate could explain is put down to one misread only
    if the plate's conflicts within this many seconds before it share that sighting: one plate
    conflicting at separate passages would take two confident misreads, and is raised. A clone's
    conflicts come at its consecutive passages, an hour or two apart; two misreads of one look-alike
    vehicle into this plate grow likelier the longer the span (3 h: see docs/architecture.md)."""


class ApproachRoute(msgspec.Struct, **_STRICT):
    source: str
    """A camera id, or a checkpoint id, placed ahead of ``checkpoint``."""
    checkpoint: str
    """Gets the alerts of ``source``'s reads as an early warning."""


class DownstreamRoute(msgspec.Struct, **_STRICT):
    from_: str = msgspec.field(name="from")
    to: list[str] = msgspec.field(default_factory=list)
    direction: Literal["in", "out"] | None = None
    """The read's direction this rule is for; unset: any direction."""


class RoutingSettings(msgspec.Struct, **_STRICT):
    approach: list[ApproachRoute] = msgspec.field(default_factory=list)
    downstream: list[DownstreamRoute] = msgspec.field(default_factory=list)


class AlertSettings(msgspec.Struct, **_STRICT):
    fold_window_s: Annotated[float, msgspec.Meta(ge=0)] = FOLD_WINDOW_S
    """A hit of the same entry on the same list this soon after the open alert was last seen is folded
    into it (count, last seen, where) instead of raising a new alert; 0: never fold. The rule is
    protocols/folding.py's; the hub announces this window to the edges, whose tablets fold the same."""


class EvidenceSettings(msgspec.Struct, **_STRICT):
    max_bytes: Annotated[int, msgspec.Meta(ge=0)] = 2 * 1024**3
    """Quota of the hub's cache of full evidence pictures fetched from the edges; oldest go first."""
    wait_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 5.0
    """How long a console request waits for a checkpoint's reply before answering "requested"."""


class StoreSettings(msgspec.Struct, **_STRICT):
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    """Where the hub keeps everything: ``sqlite`` (hub.db and the day files under ``data_dir``, the
    default) or ``postgresql`` (the database ``dsn`` names)."""
    busy_timeout_s: float = 30.0
    """How long a commit waits for a write lock another process holds on hub.db before it fails
    (nothing is acknowledged then, and the edges send again)."""
    dsn: str = ""
    """With ``backend = "postgresql"``: the database, as a libpq connection string or URI without the
    password (``host=db.example port=5432 dbname=cordon user=cordon``)."""
    password: str = ""
    """The database password; better from a secret file (``password_file``, or the environment:
    ``CORDON_HUB_STORE__PASSWORD_FILE``)."""
    password_file: str = ""
    """A file holding the database password (instead of ``password``)."""
    pool_size: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    """PostgreSQL connections kept open for searches and other reads."""

    def __post_init__(self) -> None:
        if self.backend == "postgresql" and not self.dsn:
            raise ValueError('store.backend = "postgresql" needs store.dsn')

    def database_password(self) -> str:
        """The password, read from ``password_file`` when one is named."""
        if not self.password_file:
            return self.password
        try:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise config.SettingsError(
                f"store.password_file: cannot read {self.password_file}: {exc.strerror or exc}"
            ) from None


class BackupSettings(msgspec.Struct, **_STRICT):
    dir: str = "/var/backups/cordon"
    """Where ``cordon backup`` puts its backups (one folder each) and rotates them."""
    keep: Annotated[int, msgspec.Meta(ge=1)] = 7
    """Backups kept; each is also pruned to the retention (central/record/backups.py)."""
    retention_days: Annotated[int, msgspec.Meta(ge=0)] = 0
    """The longest a read is kept in a backup, counted as ``record.retention_days`` is (0: the same). A
    PostgreSQL base backup cannot be pruned, so it is deleted once the oldest day it holds leaves this
    window: keeping N nightly ones needs N days more than ``record.retention_days``."""
    wal_archive: str = ""
    """With ``store.backend = "postgresql"``: the folder PostgreSQL's ``archive_command`` copies WAL into,
    as this machine sees it; rotation deletes the WAL no kept backup needs, ``cordon restore`` replays it."""
    pg_bin: str = ""
    """Folder of PostgreSQL's programs (pg_basebackup, pg_verifybackup, pg_archivecleanup); empty:
    Debian's ``/usr/lib/postgresql/<major>/bin``, else the PATH."""


class KitsSettings(msgspec.Struct, **_STRICT):
    id_secret_file: str = ""
    """The deployment secret that keys the ID-number hash: the same file as the edges' ``kits.id_secret_file``.
    The person-list entry API hashes ID numbers with it; empty: only pre-hashed values are accepted."""


class ViidPlatformSettings(msgspec.Struct, **_STRICT):
    """One 视图库 the hub subscribes to (``[[viid]]`` in hub.toml)."""

    name: str
    url: str
    """The platform's address, e.g. ``http://10.0.0.5:1400`` (the ``/VIID/...`` paths are appended)."""
    platform_id: str
    """The platform's 20-digit code: its notifications carry it in ``User-Identify``."""
    hub_id: str
    """The hub's own 20-digit code at this platform (it registers with it)."""
    username: str = ""
    """Digest user name the platform gave the hub; empty: ``hub_id``."""
    password: str = ""
    password_file: str = ""
    """A file holding the digest password (instead of ``password``)."""
    receive_url: str
    """Where the platform sends notifications: the hub's ``…/VIID/SubscribeNotifications`` as the
    platform reaches it."""
    notify_token: str = ""
    """Added to ``receive_url`` as ``?token=``; a notification without it is refused."""
    notify_token_file: str = ""
    allow_from: list[str] = msgspec.field(default_factory=list)
    """Addresses the platform's notifications may come from (CIDR); empty: any."""
    checkpoints: dict[str, str] = msgspec.field(default_factory=dict)
    """The devices subscribed to: 20-digit ``DeviceID`` (or ``TollgateID``) -> checkpoint id."""
    subscribe_ttl_s: Annotated[float, msgspec.Meta(gt=0)] = 86400.0
    renew_before_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    keepalive_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    utc_offset: str = "+08:00"
    report_hits: bool = False
    """Send hits on this platform's records back as disposition notifications (布控告警)."""
    disposition_id: str = ""
    """The ``DispositionID`` the platform knows those notifications by (its 布控 for the ring)."""

    def __post_init__(self) -> None:
        where = f"viid platform {self.name!r}"
        for key in ("platform_id", "hub_id"):
            if not viid.valid_device_id(getattr(self, key)):
                raise ValueError(f"{where}: {key} is not a 20-digit GA/T 1400 code")
        for device in self.checkpoints:
            if not viid.valid_device_id(device):
                raise ValueError(f"{where}: checkpoints key {device!r} is not a 20-digit code")
        if not self.checkpoints:
            raise ValueError(f"{where}: checkpoints maps no device to a checkpoint")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"{where}: url must start with http:// or https://")
        if not (self.notify_token or self.notify_token_file or self.allow_from):
            raise ValueError(f"{where}: set notify_token or allow_from, or anyone could send reads")
        if self.report_hits and not self.disposition_id:
            raise ValueError(f"{where}: report_hits needs the disposition_id the platform gave the ring")
        for net in self.allow_from:
            ipaddress.ip_network(net, strict=False)
        viid.parse_offset(self.utc_offset)


class ClusterSettings(msgspec.Struct, **_STRICT):
    """``[cluster]``: this hub among the hubs that share one PostgreSQL store, and the work that runs on one
    of them at a time (docs/architecture.md, "Work that runs once")."""

    name: str = ""
    """This hub's name among the others (the health route, its logs, the database's ``application_name``);
    with ``mqtt.share_group`` also its MQTT client id, one name for both. Empty: ``mqtt.client_id`` when
    that is set, else the host name and the HTTP port (``host:8080``)."""
    duty_beat_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    """How often a hub proves to the database that it still holds its duties, and tries to take the duties
    nobody holds (a dead hub's are taken over within one beat of the database freeing them)."""
    duty_lease_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 4.0
    """A hub stops a duty when no beat has proved it this long; the database ends a hub's silent session,
    and frees its duties, half as long again after its last beat."""
    redispatch_after_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    """An alert still not dispatched this long after it was raised, by a hub that is gone (it died between
    the commit and the dispatch), is taken over and dispatched by the hub holding the ``redispatch`` duty."""

    def __post_init__(self) -> None:
        if self.duty_lease_s < 2 * self.duty_beat_s:
            raise ValueError("cluster.duty_lease_s must be at least twice cluster.duty_beat_s")


class HubSettings(msgspec.Struct, **_STRICT):
    data_dir: str = "./data/hub"
    time_zone: str = "Asia/Shanghai"
    """The one time zone (IANA name) every time is shown in: the console's clocks and dates, and the
    clock times written into cloned-plate explanations."""
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    mqtt: MqttSettings = msgspec.field(default_factory=MqttSettings)
    watchlists: WatchlistSettings = msgspec.field(default_factory=WatchlistSettings)
    console: ConsoleSettings = msgspec.field(default_factory=ConsoleSettings)
    clock: ClockSettings = msgspec.field(default_factory=ClockSettings)
    feed: FeedSettings = msgspec.field(default_factory=FeedSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    record: RecordSettings = msgspec.field(default_factory=RecordSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    evidence: EvidenceSettings = msgspec.field(default_factory=EvidenceSettings)
    clones: CloneSettings = msgspec.field(default_factory=CloneSettings)
    permits: list[PermitSettings] = msgspec.field(default_factory=list)
    upstream: list[UpstreamSettings] = msgspec.field(default_factory=list)
    viid: list[ViidPlatformSettings] = msgspec.field(default_factory=list)
    webhooks: list[WebhookSettings] = msgspec.field(default_factory=list)
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    signing: SigningSettings = msgspec.field(default_factory=SigningSettings)
    kits: KitsSettings = msgspec.field(default_factory=KitsSettings)
    backup: BackupSettings = msgspec.field(default_factory=BackupSettings)
    cluster: ClusterSettings = msgspec.field(default_factory=ClusterSettings)

    def __post_init__(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"time_zone {self.time_zone!r} is not a known IANA time zone (e.g. Asia/Shanghai)"
            ) from None
        self._one_name()

    def _one_name(self) -> None:
        """``cluster.name`` and ``mqtt.client_id`` name one hub: set either, the other follows it. With
        ``mqtt.share_group`` (a hub of several) they are one name, so two different ones are refused; alone,
        the client id stays ``cordon-hub`` unless set (its persistent session on the broker keeps its id)."""
        name, client_id, shared = self.cluster.name, self.mqtt.client_id, self.mqtt.share_group
        if shared and name and client_id and name != client_id:
            raise ValueError(
                f"cluster.name {name!r} and mqtt.client_id {client_id!r} both name this hub (mqtt.share_group "
                "is set): set one of them, the other follows it"
            )
        if not client_id:
            if shared and name and not topics.valid_hub_id(name):
                raise ValueError(
                    f"cluster.name {name!r} is this hub's MQTT client id too (mqtt.share_group is set, "
                    "mqtt.client_id is not): letters, digits, '-' and '_', at most 64"
                )
            self.mqtt.client_id = name if shared and name else "cordon-hub"
        if not name and (client_id or shared):
            self.cluster.name = self.mqtt.client_id

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def hub_name(self) -> str:
        """``cluster.name`` (or ``mqtt.client_id``, which it follows), else this host's name and HTTP port."""
        return self.cluster.name or f"{socket.gethostname()}:{self.http.port}"


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> HubSettings:
    """Read hub.toml, apply ``CORDON_HUB_SECTION__KEY`` overrides, validate."""
    return config.load(HubSettings, path, os.environ if environ is None else environ, ENV_PREFIX)
