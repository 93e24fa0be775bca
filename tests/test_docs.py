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


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, spaces and
    hyphens stay), each space a hyphen."""
    import re

    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    import re

    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not re.match(r"#{1,6} ", line):
            continue
        slug = _slug(line.lstrip("#"))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_every_link_to_a_heading_finds_it():
    """A link such as ``cameras.md#folder--ftp-drop`` must name a heading that exists there (GitHub's
    anchors), or the reader lands at the top of the page."""
    import re

    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            page = (doc.parent / target).resolve() if target else doc
            if anchor not in _anchors(page):
                broken.append(f"{doc.relative_to(ROOT)}: {target}#{anchor}")
    assert not broken, f"links to headings that do not exist: {broken}"


def test_the_readme_lists_each_endpoint_once():
    import re

    rows = re.findall(
        r"^\| (`[^|]+`) \| (hub|edge|both) \|", (ROOT / "README.md").read_text(encoding="utf-8"), re.M
    )
    twice = sorted({row for row in rows if rows.count(row) > 1})
    assert not twice, f"endpoints listed more than once in the README: {twice}"
