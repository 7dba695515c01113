"""Error types shared by every stage.

Every error a user can cause is an `XnerError` whose message says what was wrong and what is allowed,
so the CLI and the dashboard can show it as-is instead of a traceback.
"""

from __future__ import annotations


class XnerError(Exception):
    """A user-facing error: the message names the problem and the allowed values."""


class DataError(XnerError):
    """Bad or missing input data (files, splits, languages)."""


class ConfigError(XnerError):
    """An invalid option, name or combination of options."""


def choices_message(kind: str, value: object, allowed: "list[str] | tuple[str, ...]") -> str:
    """Build the standard 'unknown X; choose one of: ...' message.

    Args:
        kind: what was looked up, e.g. "perturbation".
        value: the value the user gave.
        allowed: the allowed names.

    Returns:
        A one-line message.
    """
    return f"unknown {kind} {value!r}; choose one of: {', '.join(sorted(allowed))}"
