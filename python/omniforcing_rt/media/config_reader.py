"""Typed reading of one JSON section of the checkpoint ``config`` metadata, collecting problems.

The media components (video VAE, audio VAE, vocoder, text connectors) read their architecture
from sections of the safetensors ``config`` JSON, with the ltx-core configurators' defaults for
absent keys. :class:`SectionReader` performs those reads with type checks and records every
problem instead of stopping at the first, so a config factory can raise one
:class:`~omniforcing_rt.errors.ConfigError` that lists them all (design.md section 5).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from omniforcing_rt.errors import ConfigError

__all__ = ["SectionReader", "parse_metadata"]


def parse_metadata(metadata: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """The ``config`` metadata as a mapping (accepts the raw JSON text too).

    Raises:
        ConfigError: the text is not JSON or not a JSON object.
    """
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError as e:
            raise ConfigError(problems=[f"checkpoint config metadata is not valid JSON: {e}"]) from None
    if not isinstance(metadata, Mapping):
        raise ConfigError(problems=[f"config metadata must be a JSON object, got {type(metadata).__name__}"])
    return metadata


class SectionReader:
    """Reads typed values from one (possibly nested) config section and records problems.

    Every getter returns the default when the key is absent (the ltx-core behaviour) and also
    when the value has the wrong type, in which case a problem naming the full key path is
    recorded; the caller raises once at the end through :meth:`raise_if_problems`.
    """

    def __init__(self, section: Any, path: str, problems: list[str] | None = None) -> None:
        """Wrap ``section`` (a JSON object) found at ``path`` (dotted, for messages)."""
        self.path = path
        self.problems: list[str] = [] if problems is None else problems
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            self.problems.append(f"{path} must be a JSON object, got {type(section).__name__}")
            section = {}
        self._section: Mapping[str, Any] = section

    def has(self, key: str) -> bool:
        """Whether the key is present in the section."""
        return key in self._section

    def raw(self, key: str, default: Any = None) -> Any:
        """The untyped value (default when absent)."""
        return self._section.get(key, default)

    def child(self, key: str) -> SectionReader:
        """Reader of a nested object; an absent key reads as an empty object (ltx-core ``.get``)."""
        return SectionReader(self._section.get(key), f"{self.path}.{key}", self.problems)

    def _bad(self, key: str, want: str, value: Any) -> None:
        self.problems.append(f"{self.path}.{key} must be {want}, got {value!r}")

    def get_int(self, key: str, default: int, *, minimum: int | None = None) -> int:
        """An integer (bools rejected), optionally at least ``minimum``."""
        value = self._section.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            self._bad(key, "an integer", value)
            return default
        if minimum is not None and value < minimum:
            self._bad(key, f"an integer >= {minimum}", value)
            return default
        return value

    def get_float(self, key: str, default: float) -> float:
        """A number, returned as float."""
        value = self._section.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            self._bad(key, "a number", value)
            return default
        return float(value)

    def get_bool(self, key: str, default: bool) -> bool:
        """A JSON boolean."""
        value = self._section.get(key, default)
        if not isinstance(value, bool):
            self._bad(key, "true or false", value)
            return default
        return value

    def get_str(self, key: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        """A string, optionally one of ``choices``."""
        value = self._section.get(key, default)
        if not isinstance(value, str):
            self._bad(key, "a string", value)
            return default
        if choices is not None and value not in choices:
            self._bad(key, f"one of {list(choices)}", value)
            return default
        return value

    def get_int_list(self, key: str, default: tuple[int, ...], *, minimum: int | None = None) -> tuple[int, ...]:
        """A list of integers, returned as a tuple."""
        value = self._section.get(key, default)
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) and (minimum is None or v >= minimum) for v in value
        ):
            bound = "" if minimum is None else f" >= {minimum}"
            self._bad(key, f"a list of integers{bound}", value)
            return default
        return tuple(value)

    def get_int_list_list(self, key: str, default: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
        """A list of lists of positive integers (vocoder dilations)."""
        value = self._section.get(key, default)
        ok = isinstance(value, list | tuple) and all(
            isinstance(row, list | tuple)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in row)
            for row in value
        )
        if not ok:
            self._bad(key, "a list of lists of positive integers", value)
            return default
        return tuple(tuple(row) for row in value)

    def raise_if_problems(self, message: str) -> None:
        """Raise one ConfigError listing every recorded problem, if any."""
        if self.problems:
            raise ConfigError(message, self.problems)
