"""Reference ``rope_av``: rotary position embedding for the audio-video transformer, in fp64.

Two layouts (spec A.9), which are different functions, not two memory orders of one rotation:

* interleaved: channel pairs (2j, 2j+1) of each head rotate together by angle j;
* split: channel j rotates against channel j + D/2 by angle j.

Both compute ``out_a = a*cos - b*sin``, ``out_b = b*cos + a*sin`` for each pair (a, b), as
ltx-core's ``apply_interleaved_rotary_emb`` / ``apply_split_rotary_emb`` do. The tables are per
pair: ``cos/sin [T, H|1, D/2]``, or ``angles [T, H|1, D/2]`` (fp32 or fp64), from which cos/sin
are computed here. Rows flagged in ``identity_rows`` (audio sink tokens, spec B.4) are copied
unrotated - "skip rotation", not "position 0".

Note (spec A.9): the checkpoint casts cos/sin to the activation dtype before use. Callers that
want that behaviour pass cos/sin already cast; the kernels then compute in fp32 and round once.
"""

from __future__ import annotations

import torch

from .._elementwise_args import validate_rope


def pair_views(x: torch.Tensor, interleaved: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The (a, b) halves of every rotation pair of x [..., D]: each [..., D/2]."""
    if interleaved:
        return x[..., 0::2], x[..., 1::2]
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def merge_pairs(a: torch.Tensor, b: torch.Tensor, interleaved: bool) -> torch.Tensor:
    """Inverse of ``pair_views``."""
    if interleaved:
        return torch.stack((a, b), dim=-1).flatten(-2)
    return torch.cat((a, b), dim=-1)


def rope_av(
    x: torch.Tensor,
    cos: torch.Tensor | None = None,
    sin: torch.Tensor | None = None,
    *,
    angles: torch.Tensor | None = None,
    interleaved: bool,
    identity_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rotate q or k by per-pair angles.

    Args:
        x: [T, H, D] queries or keys (after q/k-norm).
        cos, sin: [T, H or 1, D/2] per-pair tables (any float dtype); or
        angles: [T, H or 1, D/2] per-pair angles in fp32/fp64 (cos/sin computed from them).
        interleaved: True for pairs (2j, 2j+1), False for the split halves (j, j + D/2).
        identity_rows: optional bool [T]; True rows are returned unrotated.

    Returns:
        [T, H, D] in x's dtype.
    """
    validate_rope(x, cos, sin, angles, identity_rows)
    if angles is not None:
        c, s = torch.cos(angles.double()), torch.sin(angles.double())
    else:
        assert cos is not None and sin is not None
        c, s = cos.double(), sin.double()
    a, b = pair_views(x.double(), interleaved)
    out = merge_pairs(a * c - b * s, b * c + a * s, interleaved)
    if identity_rows is not None:
        out = torch.where(identity_rows[:, None, None], x.double(), out)
    return out.to(x.dtype)
