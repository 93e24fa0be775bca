"""The message schemas of ``protocols/asyncapi.yaml``, generated from the wire types.

Nobody writes the ``components.schemas`` block of the AsyncAPI document by hand: it is what msgspec
says about the types in ``protocols.messages.WIRE_MESSAGES`` (and the types nested in them), so the
document cannot drift from what the decoders accept. ``tests/test_asyncapi.py`` fails when it has.

After changing a message, regenerate the block and replace the old one. It is the last section of the
document, so from the repository root::

    .venv/bin/python -m protocols.asyncapi_gen > /tmp/schemas.yaml
    sed -i '/^  schemas:$/,$d' protocols/asyncapi.yaml && cat /tmp/schemas.yaml >> protocols/asyncapi.yaml

One translation happens on the way. msgspec writes JSON Schema 2020-12, while an AsyncAPI 3 Schema
Object is a superset of JSON Schema draft 07, so a fixed-length array (``prefixItems``) becomes
draft 07's ``items: [...]`` with ``additionalItems``, and the OpenAPI-style ``discriminator`` object
(AsyncAPI's ``discriminator`` is a plain string naming a schema) is dropped: the ``type`` tag that
every event carries is already an ``enum`` of one value in each alternative. Any other keyword that
draft 07 does not know is an error here rather than a silently wrong document.

Descriptions (the types' docstrings) are cleaned as ``inspect.cleandoc`` does: msgspec 0.23 and later
dedent them and earlier releases do not, and the document must not depend on which one is installed.
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from protocols.messages import WIRE_MESSAGES

REF_TEMPLATE = "#/components/schemas/{name}"

# Keywords whose value is one schema, a list of schemas, or a map of name -> schema.
_ONE = {
    "items",
    "additionalItems",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
}
_LIST = {"anyOf", "oneOf", "allOf"}
_MAP = {"properties", "patternProperties", "definitions"}
# Keywords that mean the same in draft 07 and 2020-12 and hold plain values.
_PLAIN = {
    "title",
    "description",
    "type",
    "enum",
    "const",
    "default",
    "examples",
    "required",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "contentEncoding",
    "contentMediaType",
    "readOnly",
    "writeOnly",
    "deprecated",
    "$ref",
}
# Next to a $ref, draft 07 ignores everything; only annotations may stand there.
_ANNOTATIONS = {"$ref", "title", "description", "default", "examples"}


def schema_components() -> dict[str, Any]:
    """The ``components.schemas`` of the AsyncAPI document: every wire message and what it nests."""
    _, components = msgspec.json.schema_components(list(WIRE_MESSAGES.values()), ref_template=REF_TEMPLATE)
    return {name: _draft07(schema, name) for name, schema in components.items()}


def _draft07(schema: Any, where: str) -> Any:
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: expected a schema, got {schema!r}")
    if "$ref" in schema and not set(schema) <= _ANNOTATIONS:
        raise ValueError(
            f"{where}: draft 07 ignores keywords beside $ref: {sorted(set(schema) - _ANNOTATIONS)}"
        )
    out: dict[str, Any] = {}
    for key, value in schema.items():
        at = f"{where}/{key}"
        if key == "discriminator":
            continue
        if key == "prefixItems":
            out["items"] = [_draft07(item, f"{at}/{i}") for i, item in enumerate(value)]
            if "items" in schema:
                out["additionalItems"] = _draft07(schema["items"], f"{where}/items")
        elif key == "items" and "prefixItems" in schema:
            continue  # became additionalItems above
        elif key in _ONE:
            out[key] = _draft07(value, at)
        elif key in _LIST:
            out[key] = [_draft07(item, f"{at}/{i}") for i, item in enumerate(value)]
        elif key in _MAP:
            out[key] = {name: _draft07(sub, f"{at}/{name}") for name, sub in value.items()}
        elif key == "default" and schema.get("uniqueItems") and isinstance(value, list):
            out[key] = sorted(value, key=str)  # a set's default: its order would change from run to run
        elif key == "description" and isinstance(value, str):
            out[key] = inspect.cleandoc(value)
        elif key in _PLAIN:
            out[key] = value
        else:
            raise ValueError(f"{at}: no draft 07 equivalent known for {key!r}; teach asyncapi_gen about it")
    return out


def render(schemas: dict[str, Any]) -> str:
    """The block as it stands in the document: ``  schemas:`` under ``components:``."""
    import yaml  # a development tool: PyYAML comes with the dev extras, the wire code does not need it

    class Dumper(yaml.SafeDumper):
        pass

    def small(value: Any) -> bool:
        return not isinstance(value, (dict, list)) and not (isinstance(value, str) and len(value) > 40)

    def represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=all(map(small, data)))

    def represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
        flow = len(data) <= 3 and all(map(small, data.values()))
        return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)

    def represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        # A docstring of several lines reads as one, as a literal block (PyYAML quotes it anyway
        # where a block cannot hold it).
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    Dumper.add_representer(str, represent_str)
    Dumper.add_representer(list, represent_list)
    Dumper.add_representer(dict, represent_dict)
    text = yaml.dump(
        {"schemas": schemas}, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=110, indent=2
    )
    return "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())


def main() -> None:
    """Print the regenerated ``components.schemas`` block of protocols/asyncapi.yaml."""
    print(render(schema_components()), end="")


if __name__ == "__main__":
    main()
