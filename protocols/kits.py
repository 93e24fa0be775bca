"""Drug quick-test kits: the catalogue, the result record, the panel-call rules and the ID-number hash.

Pure: no I/O. The edge reads kits by hand, from an analyzer's export or from a photo; whichever way,
the reading ends up as a ``KitResult`` checked here, so the tablet, the edge and the hub agree on what
a valid result is and on which results raise an alert.

Line conventions. Most cassettes are *competitive*: the drug in the sample blocks the test line, so a
visible T line means **negative** and no T line means positive. DrugWipe-type *direct* kits show a T
line when the drug **is** present. Either way, no C (control) line means the panel is invalid. A faint
line is still a line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import tomllib
from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

from .errors import CordonError

LineConvention = Literal["competitive", "direct"]
SampleType = Literal["saliva", "urine"]
PanelCall = Literal["positive", "negative", "invalid"]
MachineCall = Literal["positive", "negative", "invalid", "uncertain"]
Source = Literal["manual", "analyzer", "photo"]

Mm = Annotated[float, msgspec.Meta(gt=0, le=500)]
MmPos = Annotated[float, msgspec.Meta(ge=0, le=500)]
Text64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]
DrugCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9][A-Z0-9/\-]{0,15}$")]
Minutes = Annotated[float, msgspec.Meta(ge=0, le=24 * 60)]

_STRICT = {"forbid_unknown_fields": True, "kw_only": True}
"""The catalogue (a configuration file): an unknown key is an error."""
_WIRE = {"kw_only": True}
"""The result record travels to the hub in a ``KitResultEvent``: a field this release does not know is
ignored there (the rule in protocols/messages.py). The tablet's input is checked strictly by its own
types at the edge (edge/kits/api.py)."""


class KitError(CordonError, ValueError):
    """A catalogue or a result that breaks the rules; the message names what and why."""


# ---------------------------------------------------------------------------------------------
# The catalogue


class Window(msgspec.Struct, **_STRICT):
    """A panel's reading window on the cassette, in mm from the cassette's top-left corner.

    The strip runs down the window (along y); ``c_mm`` and ``t_mm`` are the C and T lines' centres
    measured from the window's top edge.
    """

    x: MmPos
    y: MmPos
    width: Mm
    height: Mm
    c_mm: MmPos
    t_mm: MmPos


class Panel(msgspec.Struct, **_STRICT):
    drug: DrugCode
    """E.g. MET, MOR/OPI, KET, MDMA, THC, COC, AMP, BZO."""
    cutoff_ng_ml: Annotated[float, msgspec.Meta(gt=0, le=100_000)]
    window: Window


class KitModel(msgspec.Struct, **_STRICT):
    model: Text64
    """The catalogue key, e.g. ``SD-SAL6``; results name their kit by it."""
    vendor: Text64
    sample_type: SampleType
    convention: LineConvention
    read_min_minutes: Minutes
    read_max_minutes: Minutes
    width_mm: Mm
    height_mm: Mm
    panels: list[Panel]
    name: Text200 = ""

    def panel_codes(self) -> list[str]:
        return [p.drug for p in self.panels]


class Catalogue(msgspec.Struct, **_STRICT):
    kits: list[KitModel]

    def get(self, model: str) -> KitModel:
        for kit in self.kits:
            if kit.model == model:
                return kit
        raise KitError(f"unknown kit model {model!r} (catalogue has {', '.join(k.model for k in self.kits)})")

    def conventions(self) -> set[str]:
        return {k.convention for k in self.kits}


LINE_GAP_MM = 2.0
"""C and T must be at least this far apart, and this far inside their window, to be told apart."""


def check_kit(kit: KitModel) -> list[str]:
    """Every problem with one kit model (empty when it is usable)."""
    problems = []
    where = f"kit {kit.model!r}"
    if not kit.panels:
        problems.append(f"{where}: no panels")
    if kit.read_min_minutes >= kit.read_max_minutes:
        problems.append(f"{where}: read window {kit.read_min_minutes}-{kit.read_max_minutes} min is empty")
    seen: set[str] = set()
    for i, panel in enumerate(kit.panels, 1):
        w = panel.window
        at = f"{where} panel {i} ({panel.drug})"
        if panel.drug in seen:
            problems.append(f"{at}: drug listed twice")
        seen.add(panel.drug)
        if w.x + w.width > kit.width_mm or w.y + w.height > kit.height_mm:
            problems.append(f"{at}: window runs off the {kit.width_mm}x{kit.height_mm} mm cassette")
        for name, pos in (("C", w.c_mm), ("T", w.t_mm)):
            if not LINE_GAP_MM / 2 <= pos <= w.height - LINE_GAP_MM / 2:
                problems.append(f"{at}: {name} line at {pos} mm is not inside the {w.height} mm window")
        if abs(w.c_mm - w.t_mm) < LINE_GAP_MM:
            problems.append(f"{at}: C and T lines closer than {LINE_GAP_MM} mm")
    return problems


def decode_catalogue(data: bytes | str, fmt: Literal["toml", "json"] = "toml") -> Catalogue:
    """Parse and check a catalogue file's contents; ``KitError`` names every problem."""
    try:
        if fmt == "toml":
            text = data.decode() if isinstance(data, bytes) else data
            catalogue = msgspec.convert(tomllib.loads(text), Catalogue)
        else:
            catalogue = msgspec.json.decode(data, type=Catalogue)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KitError(f"catalogue is not valid {fmt.upper()}: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise KitError(f"catalogue: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise KitError(f"catalogue is not valid JSON: {exc}") from exc
    problems = []
    models: set[str] = set()
    for kit in catalogue.kits:
        if kit.model in models:
            problems.append(f"kit {kit.model!r} listed twice")
        models.add(kit.model)
        problems += check_kit(kit)
    if problems:
        raise KitError("catalogue: " + "; ".join(problems))
    return catalogue


def merge_catalogues(base: Catalogue, extra: Catalogue) -> Catalogue:
    """A province's file on top of the shipped one: same model replaces, new models are added."""
    kits = {k.model: k for k in base.kits}
    kits.update({k.model: k for k in extra.kits})
    return Catalogue(kits=list(kits.values()))


# ---------------------------------------------------------------------------------------------
# Panel-call rules


def call_panel(convention: LineConvention, c_line: bool, t_line: bool) -> PanelCall:
    """What one panel says, given which lines are visible (a faint line counts as visible)."""
    if not c_line:
        return "invalid"
    if convention == "competitive":
        return "negative" if t_line else "positive"
    return "positive" if t_line else "negative"


def t_line_for(convention: LineConvention, call: PanelCall) -> bool | None:
    """The T line a valid panel shows for ``call`` (None for invalid: the T line says nothing)."""
    if call == "invalid":
        return None
    return (call == "negative") == (convention == "competitive")


# ---------------------------------------------------------------------------------------------
# Subject identity: a slow keyed hash of the ID number, never the number itself


class ScryptParams(msgspec.Struct, frozen=True, **_STRICT):
    n: int = 2**15
    r: int = 8
    p: int = 1


ID_HASH_PARAMS = ScryptParams()
"""One hash costs ~70 ms on the reference 2-core machine (n=2^15, r=8: 32 MiB), so enumerating the
~10^11 valid ID numbers takes ~200 CPU-years per stolen edge. Stored with every hash, so it can be raised."""

_ID_HASH_RE = re.compile(r"^scrypt\$n=(\d+),r=(\d+),p=(\d+)\$([0-9a-f]{64})$")
_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_ID_CHECK = "10X98765432"


def normalize_id_number(number: str) -> str:
    """Strip spaces and hyphens, upper-case the X check character."""
    return re.sub(r"[\s\-]", "", number).upper()


def hash_id_number(number: str, secret: bytes, params: ScryptParams = ID_HASH_PARAMS) -> str:
    """``scrypt$n=..,r=..,p=..$<hex>``: keyed by the deployment secret, deliberately slow.

    The same number gives the same hash across the deployment (that is what watchlists match on),
    so the secret plays the salt's part; without it the hash cannot even be tested.
    """
    if len(secret) < 16:
        raise KitError("the ID hash secret must be at least 16 bytes")
    digest = hashlib.scrypt(
        normalize_id_number(number).encode(),
        salt=b"cordon-id-v1\x00" + secret,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=min(2**31 - 1, 2 * 128 * params.r * params.n + 2**20),
        dklen=32,
    )
    return f"scrypt$n={params.n},r={params.r},p={params.p}${digest.hex()}"


def id_hash_params(hashed: str) -> ScryptParams:
    """The parameters a stored hash was made with."""
    m = _ID_HASH_RE.match(hashed)
    if not m:
        raise KitError("not an ID hash of the form scrypt$n=..,r=..,p=..$<64 hex>")
    return ScryptParams(n=int(m[1]), r=int(m[2]), p=int(m[3]))


def id_matches(number: str, hashed: str, secret: bytes) -> bool:
    """Whether ``number`` is the one behind ``hashed`` (made with whatever parameters it names)."""
    return hmac.compare_digest(hash_id_number(number, secret, id_hash_params(hashed)), hashed)


def last4(number: str) -> str:
    return normalize_id_number(number)[-4:]


def id_number_problem(number: str) -> str | None:
    """Why an ID number is not a valid GB 11643 resident ID number, or None when it is.

    A problem is a flag on the record, not a refusal: the card in the officer's hand is the truth.
    """
    n = normalize_id_number(number)
    if len(n) == 15 and n.isdigit():
        return "15-digit first-generation number: it has no check digit to verify"
    if len(n) != 18:
        return f"{len(n)} characters; a resident ID number has 18"
    if not n[:17].isdigit() or not (n[17].isdigit() or n[17] == "X"):
        return "the first 17 characters must be digits and the last a digit or X"
    try:
        born = dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return f"birth date {n[6:14]} is not a date"
    if born.year < 1900:
        return f"birth date {n[6:14]} is before 1900"
    expected = _ID_CHECK[sum(int(d) * w for d, w in zip(n[:17], _ID_WEIGHTS, strict=True)) % 11]
    if n[17] != expected:
        return f"check character is {n[17]}, the first 17 digits give {expected}"
    return None


class Subject(msgspec.Struct, **_WIRE):
    id_hash: str
    id_last4: Annotated[str, msgspec.Meta(min_length=4, max_length=4)]
    id_problem: Text200 | None = None
    """Set when the number fails the GB 11643 checks (wrong check digit, impossible birth date...)."""
    name: Text64 | None = None


def subject_from_id(number: str, secret: bytes, name: str | None = None) -> Subject:
    """The record's view of a person: hash, last four, a flag if the number looks wrong; never the number."""
    n = normalize_id_number(number)
    if len(n) < 4:
        raise KitError("an ID number needs at least 4 characters")
    return Subject(
        id_hash=hash_id_number(n, secret),
        id_last4=last4(n),
        id_problem=id_number_problem(n),
        name=name or None,
    )


# ---------------------------------------------------------------------------------------------
# The result record


class MachineReading(msgspec.Struct, **_WIRE):
    """What the photo reader or an analyzer said about one panel, before the officer's call."""

    call: MachineCall
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    reason: Text200 = ""
    c_contrast: float | None = None
    t_ratio: float | None = None
    """T line darkness as a share of the C line's (photo reader only)."""
    t_noise: float | None = None
    """The noise width of ``t_ratio`` in the same units: how far a reading could be off."""


class PanelResult(msgspec.Struct, **_WIRE):
    drug: DrugCode
    officer_call: PanelCall
    """The officer confirms or corrects every panel; this is the call of record."""
    machine: MachineReading | None = None


class KitResult(msgspec.Struct, **_WIRE):
    result_id: Text64
    subject: Subject
    kit_model: Text64
    lot: Text64
    expiry: dt.date
    sample_type: SampleType
    panels: list[PanelResult]
    sampled_at: float
    read_at: float
    officers: list[Text64]
    """The two officers the procedure requires, by badge number."""
    source: Source
    photo_sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    needs_lab: bool = False
    sample_a: Text64 | None = None
    sample_b: Text64 | None = None
    """The sealed A/B sample numbers; required when a positive goes to the laboratory."""
    kit_expired: bool = False
    outside_read_window: bool = False
    notes: Text200 = ""


def _local_date(ts: float, utc_offset_h: float) -> dt.date:
    return (dt.datetime.fromtimestamp(ts, dt.UTC) + dt.timedelta(hours=utc_offset_h)).date()


def check_result(result: KitResult, catalogue: Catalogue, utc_offset_h: float = 8.0) -> KitResult:
    """Check a result against its kit and return it with ``kit_expired`` and ``outside_read_window`` set.

    Breaking the procedure (wrong panels, one officer, a lab sample without numbers) is an error;
    an expired kit or a reading outside the read window is allowed but flagged, because the officer
    may have had no other kit and the record must show it. A kit is good through its expiry day
    (local time, ``utc_offset_h``).
    """
    kit = catalogue.get(result.kit_model)
    problems = []
    if result.sample_type != kit.sample_type:
        problems.append(f"kit {kit.model} takes {kit.sample_type}, not {result.sample_type}")
    drugs = [p.drug for p in result.panels]
    if drugs != kit.panel_codes():
        problems.append(f"panels {drugs} do not match kit {kit.model}'s {kit.panel_codes()} (same order)")
    officers = [o.strip() for o in result.officers]
    if len(officers) != 2 or len(set(officers)) != 2 or not all(officers):
        problems.append("two different officers must be named")
    if result.read_at < result.sampled_at:
        problems.append("read before the sample was taken")
    if result.needs_lab:
        if not any(p.officer_call == "positive" for p in result.panels):
            problems.append("only a positive result goes to the laboratory")
        if not result.sample_a or not result.sample_b:
            problems.append("a result that goes to the laboratory needs sealed sample numbers A and B")
        elif result.sample_a == result.sample_b:
            problems.append("sealed samples A and B must have different numbers")
    if result.source == "photo" and not result.photo_sha256:
        problems.append("a photo reading must keep the photo's sha256")
    if problems:
        raise KitError(f"result {result.result_id}: " + "; ".join(problems))
    minutes = (result.read_at - result.sampled_at) / 60
    return msgspec.structs.replace(
        result,
        kit_expired=_local_date(result.sampled_at, utc_offset_h) > result.expiry,
        outside_read_window=not kit.read_min_minutes <= minutes <= kit.read_max_minutes,
    )


def overall_call(panels: Iterable[PanelResult]) -> PanelCall:
    """Positive if any panel is, else invalid if any panel is, else negative."""
    calls = {p.officer_call for p in panels}
    return "positive" if "positive" in calls else "invalid" if "invalid" in calls else "negative"


def raises_alert(result: KitResult) -> bool:
    """A positive or invalid result alerts the tablet and the hub."""
    return overall_call(result.panels) != "negative"


def decode_result(data: bytes) -> KitResult:
    try:
        return msgspec.json.decode(data, type=KitResult)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise KitError(f"kit result: {exc}") from exc
