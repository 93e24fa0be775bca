"""Docs that can drift, don't: every setting and every command is documented."""

from pathlib import Path

import msgspec
import pytest

from central.settings import HubSettings
from cordon.cli import build_parser
from edge.settings import EdgeSettings

ROOT = Path(__file__).resolve().parent.parent


def keys(struct_type, prefix=""):
    out = []
    for field in msgspec.structs.fields(struct_type):
        ann = field.type
        inner = getattr(ann, "__args__", (None,))[0] if getattr(ann, "__origin__", None) is list else None
        if isinstance(ann, type) and issubclass(ann, msgspec.Struct):
            out += keys(ann, f"{prefix}{field.encode_name}.")
        elif isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            out += keys(inner, f"{prefix}{field.encode_name}[].")
        else:
            out.append(prefix + field.encode_name)
    return out


@pytest.mark.parametrize("settings", [EdgeSettings, HubSettings])
def test_every_setting_is_documented(settings):
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [k for k in keys(settings) if f"`{k}`" not in text]
    assert not missing, f"undocumented settings: {missing}"


def commands(parser, prefix="cordon"):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}"
                yield from commands(sub, f"{prefix} {name}")


def test_every_command_is_documented():
    text = (ROOT / "README.md").read_text(encoding="utf-8") + (ROOT / "docs" / "cli.md").read_text(
        encoding="utf-8"
    )
    missing = [c for c in commands(build_parser()) if c not in text]
    assert not missing, f"undocumented commands: {missing}"


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text(encoding="utf-8")[:1500]
    assert "make demo" in head and "make test" in head
