# ruff: noqa: N999  (the extension module is named _C)
"""Type stub for the pybind11 module omniforcing_rt._C (hand-written; keep in step with csrc/bindings/).

Names mirror the Python modules they twin: pipeline/layout.py (LayoutKind, BlockSpec, BlockLayout,
audio_latents_for_video), model/positions.py (media constants, *_latent_bounds_s) and
pipeline/schedule.py (ltx2_sigmas, student_sigmas). C++ errors arrive as omniforcing_rt.errors
classes, re-exported here as the same objects.
"""

from collections.abc import Sequence
from enum import Enum
from typing import Any, ClassVar, Final, NoReturn

import numpy as np
import numpy.typing as npt

from omniforcing_rt import errors as errors
from omniforcing_rt.errors import BackendError as BackendError
from omniforcing_rt.errors import CacheCapacityError as CacheCapacityError
from omniforcing_rt.errors import CheckpointError as CheckpointError
from omniforcing_rt.errors import ConfigError as ConfigError
from omniforcing_rt.errors import EngineDeadError as EngineDeadError
from omniforcing_rt.errors import InputError as InputError
from omniforcing_rt.errors import OfrtError as OfrtError
from omniforcing_rt.errors import StreamAbortedError as StreamAbortedError
from omniforcing_rt.errors import UnsupportedError as UnsupportedError

# ------------------------------------------------------------------------------- constants
VIDEO_FPS: Final[int]
VIDEO_TEMPORAL_STRIDE: Final[int]
VIDEO_SPATIAL_STRIDE: Final[int]
AUDIO_MEL_FRAMES_PER_S: Final[int]
AUDIO_LATENT_MEL_STRIDE: Final[int]
AUDIO_SAMPLE_RATE: Final[int]
AUDIO_SAMPLES_PER_MEL: Final[int]
DEFAULT_MAX_SHIFT: Final[float]
DEFAULT_TERMINAL: Final[float]
DEFAULT_GRID_STEPS: Final[int]
RELEASE_STEP_LIST: Final[tuple[int, ...]]
PAPER_STEP_LIST: Final[tuple[int, ...]]

# ---------------------------------------------------------------------------------- layout
class LayoutKind:
    """Which block-0 convention a layout follows (pybind11 enum; also built from "release"/"paper")."""

    RELEASE: ClassVar[LayoutKind]
    PAPER: ClassVar[LayoutKind]
    __members__: ClassVar[dict[str, LayoutKind]]
    def __init__(self, value: int | str) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

# A layout kind: _C.LayoutKind, "release" / "paper", or a layout.LayoutKind member (a str Enum).
_Kind = LayoutKind | str | Enum

def layout_kind_name(kind: LayoutKind) -> str:
    """The kind's name, "release" or "paper" (the value of the matching layout.LayoutKind member)."""

def audio_latents_for_video(video_latents: int) -> int:
    """Audio latents spanning the same time as ``video_latents`` video latents from t = 0."""

class BlockSpec:
    """One causal block: latent ranges, token ranges and the media it decodes to (read-only)."""

    @property
    def index(self) -> int: ...
    @property
    def video_start(self) -> int: ...
    @property
    def video_frames(self) -> int: ...
    @property
    def audio_start(self) -> int: ...
    @property
    def audio_frames(self) -> int: ...
    @property
    def video_token_start(self) -> int: ...
    @property
    def video_tokens(self) -> int: ...
    @property
    def audio_token_start(self) -> int: ...
    @property
    def audio_tokens(self) -> int: ...
    @property
    def sink_tokens(self) -> int: ...
    @property
    def pixel_frame_start(self) -> int: ...
    @property
    def pixel_frames(self) -> int: ...
    @property
    def audio_sample_start(self) -> int: ...
    @property
    def audio_samples(self) -> int: ...
    @property
    def video_pts_s(self) -> float: ...
    @property
    def audio_pts_s(self) -> float: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class BlockLayout:
    """A clip cut into causal blocks; every constructor raises ConfigError listing every problem."""

    def __init__(
        self,
        *,
        kind: _Kind,
        first_block_frames: int,
        block_frames: int,
        num_blocks: int,
        tokens_per_frame: int,
        audio_sink_tokens: int = 0,
    ) -> None: ...
    @staticmethod
    def default_first_block_frames(kind: _Kind) -> int: ...
    @staticmethod
    def create(
        kind: _Kind,
        num_blocks: int,
        tokens_per_frame: int,
        *,
        block_frames: int = 3,
        first_block_frames: int | None = None,
        audio_sink_tokens: int = 0,
    ) -> BlockLayout: ...
    @staticmethod
    def for_video_latents(
        kind: _Kind,
        video_latents: int,
        tokens_per_frame: int,
        *,
        block_frames: int = 3,
        first_block_frames: int | None = None,
        audio_sink_tokens: int = 0,
    ) -> BlockLayout: ...
    @staticmethod
    def for_seconds(
        kind: _Kind,
        seconds: float,
        tokens_per_frame: int,
        *,
        block_frames: int = 3,
        first_block_frames: int | None = None,
        audio_sink_tokens: int = 0,
    ) -> BlockLayout: ...
    @property
    def kind(self) -> LayoutKind: ...
    @property
    def first_block_frames(self) -> int: ...
    @property
    def block_frames(self) -> int: ...
    @property
    def num_blocks(self) -> int: ...
    @property
    def tokens_per_frame(self) -> int: ...
    @property
    def audio_sink_tokens(self) -> int: ...
    @property
    def video_latent_frames(self) -> int: ...
    @property
    def audio_latent_frames(self) -> int: ...
    @property
    def pixel_frames(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def audio_samples(self) -> int: ...
    def block(self, k: int) -> BlockSpec: ...
    @property
    def blocks(self) -> list[BlockSpec]: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

# ----------------------------------------------------------------------------- time bounds
def video_latent_bounds_s(start: int, count: int) -> npt.NDArray[np.float64]:
    """[count, 2] float64 time bounds in seconds of video latent frames start..start+count-1."""

def audio_latent_bounds_s(start: int, count: int) -> npt.NDArray[np.float64]:
    """[count, 2] float64 time bounds in seconds of audio latents start..start+count-1."""

# ---------------------------------------------------------------------------------- sigmas
def ltx2_sigmas(steps: int, shift: float = 2.05, terminal: float = 0.1) -> npt.NDArray[np.float32]:
    """The LTX2Scheduler grid without a latent, float32 [steps + 1] from ~1 to 0."""

def student_sigmas(step_list: Sequence[int], grid_steps: int = 40) -> npt.NDArray[np.float32]:
    """Map a denoising_step_list to float32 sigmas (nearest point of the grid_steps grid)."""

# --------------------------------------------------------------------------------- _testing
class _testing:  # noqa: N801 - a submodule at runtime (_C._testing), typed as a namespace here
    """Test-only hooks into the C++ host logic; not public API."""

    @staticmethod
    def throw_error(name: str, message: str, items: Sequence[str] = ()) -> NoReturn: ...
    @staticmethod
    def check_non_negative(name: str, value: int) -> int: ...
    @staticmethod
    def float_repr(value: float) -> str: ...
    @staticmethod
    def fixed(value: float, digits: int) -> str: ...
    @staticmethod
    def str_repr(text: str) -> str: ...
    @staticmethod
    def int_list_repr(values: Sequence[int]) -> str: ...
    # ---- engine host logic (bindings/engine_testing.cc, bindings/engine.cc)
    @staticmethod
    def splitmix64(x: int) -> int: ...
    @staticmethod
    def noise_key(seed: int, block: int, step: int, stream: int) -> int: ...
    @staticmethod
    def keyed_normal(key: int, count: int) -> npt.NDArray[np.float32]: ...
    @staticmethod
    def pages_for_tokens(tokens: int, page_size_tokens: int) -> int: ...
    @staticmethod
    def engine_config_roundtrip(json: str) -> str: ...
    @staticmethod
    def engine_config_info(json: str) -> dict[str, Any]: ...
    @staticmethod
    def rope_inputs(
        manifest_json: str,
        video_start: int,
        video_frames: int,
        audio_start: int,
        audio_frames: int,
        sink_tokens: int,
        grid_h: int,
        grid_w: int,
    ) -> list[Any]:
        """8 DLPack capsules (cos/sin of video, audio, video_cross, audio_cross), then positions."""

    class PagePool:
        def __init__(self, num_pages: int) -> None: ...
        @property
        def num_pages(self) -> int: ...
        @property
        def free_pages(self) -> int: ...
        def allocate(self, count: int) -> list[int]: ...
        def release(self, pages: Sequence[int]) -> None: ...

    class PageTable:
        def __init__(
            self,
            page_size_tokens: int,
            first_block_tokens: int,
            block_tokens: int,
            window_blocks: int,
            max_blocks: int,
            pages: Sequence[int],
        ) -> None: ...
        @staticmethod
        def pages_needed(
            page_size_tokens: int, first_block_tokens: int, block_tokens: int, window_blocks: int, max_blocks: int
        ) -> int: ...
        @property
        def block(self) -> int: ...
        @property
        def history_slots(self) -> list[int]: ...
        @property
        def inflight_slots(self) -> list[int]: ...
        @property
        def committed_blocks(self) -> list[int]: ...
        @property
        def pages(self) -> list[int]: ...
        @property
        def pinned(self) -> dict[str, Any]: ...
        @property
        def inflight(self) -> dict[str, Any]: ...
        @property
        def window(self) -> list[dict[str, Any]]: ...
        def commit(self) -> None: ...

    class IntQueue:
        def __init__(self, capacity: int) -> None: ...
        @property
        def capacity(self) -> int: ...
        def __len__(self) -> int: ...
        def full(self) -> bool: ...
        def closed(self) -> bool: ...
        def try_push(self, item: int) -> bool: ...
        def pop(self, timeout_s: float) -> tuple[int | None, bool]: ...
        def close(self, drop: bool = False) -> None: ...

# ---------------------------------------------------------------------------------- engine
def plan_kv_cache(config_json: str, manifest_json: str) -> dict[str, int]:
    """The KV page-pool plan; CacheCapacityError over kv_budget_bytes (nothing allocated)."""

class StreamChunk:
    """One generated block: float32 latents (numpy), its BlockSpec, per-stage timings (ms)."""

    @property
    def spec(self) -> BlockSpec: ...
    @property
    def video_latents(self) -> npt.NDArray[np.float32]: ...
    @property
    def audio_latents(self) -> npt.NDArray[np.float32]: ...
    @property
    def timings(self) -> dict[str, Any]: ...
    @property
    def ready_s(self) -> float: ...

class Engine:
    """The native streaming engine (omniforcing_rt.Engine wraps it)."""

    def __init__(self, config_json: str, package_dir: str) -> None: ...
    def start_stream(
        self, video_k: Any, video_v: Any, audio_k: Any, audio_v: Any, mask: Any, seed: int, num_blocks: int
    ) -> int: ...
    def next_chunk(self, stream: int, timeout_s: float = -1.0) -> StreamChunk | None: ...
    def cancel(self, stream: int) -> None: ...
    def close_stream(self, stream: int) -> None: ...
    def stream_stats(self, stream: int) -> dict[str, Any]: ...
    def stats(self) -> dict[str, int]: ...
    @property
    def config_json(self) -> str: ...
    @property
    def config_hash(self) -> str: ...
