"""The one error type for bad input: it names the config key and what is allowed."""

from __future__ import annotations

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
