"""Block-causal streaming: layouts, schedules, noise, masks, the KV-cached loop and its oracle."""

from omniforcing_rt.pipeline.kv_cache import CachePolicy, KvCacheSet
from omniforcing_rt.pipeline.layout import BlockLayout, BlockSpec, LayoutKind
from omniforcing_rt.pipeline.masks import BlockCausalMask, BlockCausalMasks
from omniforcing_rt.pipeline.offline import masked_forward
from omniforcing_rt.pipeline.schedule import PAPER_STEP_LIST, RELEASE_STEP_LIST, ltx2_sigmas, student_sigmas
from omniforcing_rt.pipeline.stream import BlockResult, PassTiming, Stream, StreamConfig, StreamingGenerator

__all__ = [
    "PAPER_STEP_LIST",
    "RELEASE_STEP_LIST",
    "BlockCausalMask",
    "BlockCausalMasks",
    "BlockLayout",
    "BlockResult",
    "BlockSpec",
    "CachePolicy",
    "KvCacheSet",
    "LayoutKind",
    "PassTiming",
    "Stream",
    "StreamConfig",
    "StreamingGenerator",
    "ltx2_sigmas",
    "masked_forward",
    "student_sigmas",
]
