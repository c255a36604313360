"""The one error type for bad input: it names the config key and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


def did_you_mean(word: object, allowed: Iterable[object]) -> str | None:
    """The allowed name(s) closest to ``word`` (by edit similarity), if close enough:
    ``"cell"``, or ``"n4m2 or n4m3"`` when two are equally close."""
    word = str(word)
    names = [str(a) for a in allowed if str(a) != word]
    score = {n: difflib.SequenceMatcher(None, word, n).ratio() for n in names}
    close = sorted((n for n in names if score[n] >= 0.6), key=lambda n: -score[n])
    if not close:
        return None
    best = [n for n in close if score[n] == score[close[0]]]
    return " or ".join(best) if len(best) <= 2 else None  # three alike: no real hint


class ConfigError(ValueError):
    """Bad configuration, reported as one line: ``<key>: <problem> (allowed: ...)``.

    ``near`` is the name the user typed (an unknown key or option): when an allowed name is
    close to it, the problem ends with ``(did you mean <name>?)``.
    """

    def __init__(
        self,
        key: str,
        problem: str,
        allowed: Iterable[str] | str | None = None,
        near: object = None,
    ):
        if near is not None and allowed is not None and not isinstance(allowed, str):
            allowed = list(allowed)
            match = did_you_mean(near, allowed)
            if match is not None:
                problem = f"{problem} (did you mean {match}?)"
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
        allowed = [a.strip() for a in m.group(2).split(",")]
        match = did_you_mean(m.group(1), allowed)
        hint = f" (did you mean {match}?)" if match else ""
        return f"unknown value {m.group(1)!r}{hint} (allowed: {m.group(2)})"
    if re.match(r"field '.*' is not Optional", msg):
        return "must not be null"
    if re.match(r"Invalid value assigned: \w+ is not a ListConfig", msg):
        return "must be a list"
    return msg
