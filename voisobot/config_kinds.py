"""The kinds config.toml names — ``[severity]`` keys, and each route's ``type`` and ``event``
values — against the kinds that can arrive: those the vendor documents and those already
seen in the store.

A misspelt kind ("app_login/unauthorised_ip") is a well-formed key, so the loader takes it,
and the override or the route then never fires. Only ``check`` can say so: Voiso may send a
kind it has not documented, so an unknown name is a warning, never a refusal to start.
"""

import difflib
import itertools
import json
from collections.abc import Iterable

from voisobot import events
from voisobot.config import Config, RouteConfig

DOCUMENTED = frozenset(events.KIND_PARAMS)  # (type, event) pairs


def warnings(cfg: Config, seen: Iterable[tuple[str, str]]) -> list[str]:
    """One sentence per kind, type or event in the config that matches nothing known."""
    known = DOCUMENTED | set(seen)
    found = [_unknown(f"[severity] {_quoted(name)}", "kind", name,
                      {f"{t}/{e}" for t, e in known})
             for name in cfg.severity if tuple(name.split("/", 1)) not in known]
    for index, route in enumerate(cfg.routes):
        found += _route_warnings(index, route, known)
    return found


def _route_warnings(index: int, route: RouteConfig, known: set[tuple[str, str]]) -> list[str]:
    types, names = {t for t, _ in known}, {e for _, e in known}
    found = [_unknown(f"routes[{index}].{field} {_quoted(value)}", field, value, choices)
             for field, values, choices in (("type", route.type, types),
                                            ("event", route.event, names))
             for value in values if value != "*" and value not in choices]
    if not found and "*" not in route.type and "*" not in route.event \
            and not known.intersection(itertools.product(route.type, route.event)):
        found.append(f"routes[{index}] matches no known kind: no type in {_listed(route.type)} "
                     f"has an event in {_listed(route.event)}")
    return found


def _unknown(where: str, what: str, value: str, choices: set[str]) -> str:
    text = f"{where} is neither a documented {what} nor one seen in the store, so it never matches"
    close = difflib.get_close_matches(value, sorted(choices), n=1)
    if close:
        return f"{text}; did you mean {_quoted(close[0])}?"
    return f"{text}; the known ones: {_listed(sorted(choices))}"


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _listed(values: Iterable[str]) -> str:
    return ", ".join(map(_quoted, values))
