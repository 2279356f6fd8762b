"""Argument validation for the memory-bound ops: ``rope_av``, ``adaln_modulate``,
``gated_residual`` and ``x0_renoise``. Shared by reference and Triton so both fail alike.
"""

from __future__ import annotations

import torch

from omniforcing_rt.errors import InputError

from ._common import FLOAT_DTYPES, check_dim, check_dtype, check_last_contiguous, check_same_device

ANGLE_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)


def validate_rope(
    x: torch.Tensor,
    cos: torch.Tensor | None,
    sin: torch.Tensor | None,
    angles: torch.Tensor | None,
    identity_rows: torch.Tensor | None,
) -> torch.Tensor:
    """Check a ``rope_av`` call; return the per-pair table that fixes the shape (cos or angles).

    ``x`` is [T, H, D] with D even; the table(s) are [T, H, D/2] or [T, 1, D/2] (shared by all
    heads); ``identity_rows`` is an optional bool [T].
    """
    check_dim("x", x, 3)
    check_dtype("x", x, FLOAT_DTYPES)
    check_last_contiguous("x", x)
    t, h, d = x.shape
    if d % 2:
        raise InputError(f"head dim must be even for rotary pairs, got {d}")
    if (angles is None) == (cos is None and sin is None):
        raise InputError("pass either cos and sin, or angles (exactly one form)")
    if angles is None and (cos is None or sin is None):
        raise InputError("cos and sin must be given together")
    tables = [("angles", angles)] if angles is not None else [("cos", cos), ("sin", sin)]
    for name, tab in tables:
        assert tab is not None
        check_dim(name, tab, 3)
        if tab.shape[0] != t or tab.shape[1] not in (1, h) or tab.shape[2] != d // 2:
            raise InputError(f"{name} must be [{t}, {h} or 1, {d // 2}], got {tuple(tab.shape)}")
        check_last_contiguous(name, tab)
        check_same_device(f"x, {name}", x, tab)
    if angles is not None:
        check_dtype("angles", angles, ANGLE_DTYPES)
    else:
        assert cos is not None and sin is not None
        check_dtype("cos", cos, FLOAT_DTYPES)
        check_dtype("sin", sin, FLOAT_DTYPES)
        if cos.shape != sin.shape:
            raise InputError(f"cos {tuple(cos.shape)} and sin {tuple(sin.shape)} differ")
    if identity_rows is not None:
        check_dtype("identity_rows", identity_rows, (torch.bool,))
        if tuple(identity_rows.shape) != (t,):
            raise InputError(f"identity_rows must be [{t}], got {tuple(identity_rows.shape)}")
        check_same_device("x, identity_rows", x, identity_rows)
    return angles if angles is not None else cos  # type: ignore[return-value]


def as_btc(name: str, x: torch.Tensor) -> torch.Tensor:
    """View a [T, C] or [B, T, C] activation as [B, T, C] (no copy)."""
    if x.dim() == 2:
        x = x.unsqueeze(0)
    check_dim(name, x, 3)
    check_dtype(name, x, FLOAT_DTYPES)
    check_last_contiguous(name, x)
    return x


def broadcast_mod(name: str, mod: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a modulation row ([C], [1|T, C] or [B, 1|T, C]) to x's [B, T, C] without copying.

    The result has stride 0 along broadcast dims, which the kernels read as "same row".
    """
    check_dtype(name, mod, FLOAT_DTYPES)
    check_same_device(f"x, {name}", x, mod)
    try:
        out = torch.broadcast_to(mod, x.shape)
    except RuntimeError as e:
        raise InputError(f"{name} {tuple(mod.shape)} does not broadcast to {tuple(x.shape)}") from e
    check_last_contiguous(name, out)
    return out


def validate_renoise(
    x: torch.Tensor, v: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> int:
    """Check an ``x0_renoise`` call; return the batch size B (x is [B, ...])."""
    check_dtype("x", x, FLOAT_DTYPES)
    if x.dim() < 1:
        raise InputError("x must have a batch dimension")
    for name, t in (("v", v), ("noise", noise)):
        check_dtype(name, t, FLOAT_DTYPES)
        if t.shape != x.shape:
            raise InputError(f"{name} {tuple(t.shape)} must match x {tuple(x.shape)}")
    batch = x.shape[0]
    for name, s in (("sigma", sigma), ("sigma_next", sigma_next)):
        if s.numel() not in (1, batch):
            raise InputError(f"{name} must hold 1 or {batch} values, got shape {tuple(s.shape)}")
        check_dtype(name, s, (torch.float32, torch.float64))
    check_same_device("x, v, noise, sigma, sigma_next", x, v, noise, sigma, sigma_next)
    return batch
