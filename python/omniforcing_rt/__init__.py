"""omniforcing_rt: real-time streaming joint audio+video generation (OmniForcing on LTX-2)."""

from omniforcing_rt.errors import (
    BackendError,
    CacheCapacityError,
    CheckpointError,
    ConfigError,
    EngineDeadError,
    InputError,
    OfrtError,
    StreamAbortedError,
    UnsupportedError,
)

__version__ = "0.1.0"

_LAZY = {
    "Engine": "omniforcing_rt.engine",
    "StreamChunk": "omniforcing_rt.engine",
    "EngineConfig": "omniforcing_rt.engine_config",
}
"""Public names imported on first use: the engine pulls in torch and the native module."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'omniforcing_rt' has no attribute {name!r}")


__all__ = [
    "BackendError",
    "CacheCapacityError",
    "CheckpointError",
    "ConfigError",
    "Engine",
    "EngineConfig",
    "EngineDeadError",
    "InputError",
    "OfrtError",
    "StreamAbortedError",
    "StreamChunk",
    "UnsupportedError",
    "__version__",
]
