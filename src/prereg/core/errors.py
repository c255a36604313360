"""The one error type for bad input: it names the config key and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Iterable


class ConfigError(ValueError):
    """Bad configuration, reported as one line: ``<key>: <problem> (allowed: ...)``."""

    def __init__(self, key: str, problem: str, allowed: Iterable[str] | str | None = None):
        self.key = key
        self.problem = problem
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.allowed = allowed
        text = f"{key}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


def simplify_message(msg: str) -> str:
    """OmegaConf's message without its ``full_key: ... object_type=...`` trailer."""
    msg = " ".join(str(msg).split())
    msg = re.split(r"\s+full_key:", msg)[0]
    m = re.match(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", msg)
    if m:
        return f"{m.group(1)!r} is not a valid {m.group(2).lower()}"
    m = re.match(r"Value '(.*)' is not a valid (\w+)", msg)
    if m:
        return f"{m.group(1)!r} is not a valid {m.group(2).lower()}"
    m = re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", msg)
    if m:  # an Enum-typed field (a closed set of options)
        return f"unknown value {m.group(1)!r} (allowed: {m.group(2)})"
    if re.match(r"field '.*' is not Optional", msg):
        return "must not be null"
    if re.match(r"Invalid value assigned: \w+ is not a ListConfig", msg):
        return "must be a list"
    return msg
