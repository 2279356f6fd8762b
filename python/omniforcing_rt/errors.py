"""The error hierarchy shared by the Python package and the C++ runtime.

Every exception the project raises on purpose derives from :class:`OfrtError`. The C++ side
(``csrc/include/ofrt/errors.h``) mirrors these classes one to one and the bindings translate
each C++ type into the Python class of the same name, so callers catch one set of types no
matter which layer failed.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BackendError",
    "CacheCapacityError",
    "CheckpointError",
    "ConfigError",
    "EngineDeadError",
    "InputError",
    "OfrtError",
    "StreamAbortedError",
    "UnsupportedError",
]


class OfrtError(Exception):
    """Base class of every error raised deliberately by omniforcing_rt."""


class ConfigError(OfrtError, ValueError):
    """A configuration is invalid. ``problems`` lists every problem found, not only the first."""

    def __init__(self, message: str | None = None, problems: Iterable[str] = ()) -> None:
        self.problems: list[str] = list(problems)
        if message is None:
            message = "invalid configuration"
        if self.problems:
            message = message + ":\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class InputError(OfrtError, ValueError):
    """A call received an argument of the wrong shape, dtype, device or value."""


class CheckpointError(OfrtError, ValueError):
    """A checkpoint is corrupt, incomplete, or does not match the model it is loaded into."""


class UnsupportedError(OfrtError):
    """An architecture, dtype, device or backend is not supported. ``reasons`` says why."""

    def __init__(self, message: str, reasons: Iterable[str] = ()) -> None:
        self.reasons: list[str] = list(reasons)
        if self.reasons:
            message = message + ":\n" + "\n".join(f"  - {r}" for r in self.reasons)
        super().__init__(message)


class CacheCapacityError(OfrtError, RuntimeError):
    """A KV cache or page pool request does not fit the configured memory budget."""


class BackendError(OfrtError, RuntimeError):
    """A compute backend (AOTInductor, TensorRT, CUDA) failed."""


class StreamAbortedError(OfrtError, RuntimeError):
    """One stream ended abnormally (cancelled or failed); the engine is still usable."""


class EngineDeadError(OfrtError, RuntimeError):
    """The engine hit an unrecoverable error and must be recreated."""
