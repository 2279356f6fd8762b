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
    "__version__",
]
