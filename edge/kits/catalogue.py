"""Load the kit catalogue: the shipped file plus, optionally, a province's own on top."""

from __future__ import annotations

from pathlib import Path

from protocols.kits import Catalogue, KitError, decode_catalogue, merge_catalogues

#: The kit models shipped with Cordon (package data beside this module).
SHIPPED_CATALOGUE = Path(__file__).with_name("kits.toml")


def load_catalogue(*paths: str | Path) -> Catalogue:
    """Read and check each file (TOML or JSON by extension); later files add or replace kit models."""
    if not paths:
        raise KitError("no catalogue file given")
    merged: Catalogue | None = None
    for path in paths:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise KitError(f"{p}: {exc.strerror}") from exc
        try:
            catalogue = decode_catalogue(data, "json" if p.suffix.lower() == ".json" else "toml")
        except KitError as exc:
            raise KitError(f"{p}: {exc}") from exc
        merged = catalogue if merged is None else merge_catalogues(merged, catalogue)
    assert merged is not None
    return merged
