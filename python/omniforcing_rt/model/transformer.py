"""The LTX-2 dual-stream audio-video transformer (reference model, gpt-fast style).

One module serves the bidirectional teacher, the critic and the block-causal student: parameter
names are those of the checkpoint (spec A.2), the runtime convention (spec A.12) is an argument,
and attention history is pluggable. Offline callers pass dense masks; the streaming pipeline passes
a :class:`KvHook` that stores each block's keys/values and returns history + block, so no mask is
needed there.

Per block (spec A.6): video and audio self-attention (modulated, gated) and text cross-attention
(plain add) run independently; both A<->V directions then read the streams after those steps, from
one shared RMS-normalisation of each stream (V->A uses the video normalisation from before the A->V
update); finally each stream's modulated, gated FFN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from omniforcing_rt.errors import InputError
from omniforcing_rt.model.adaln import AdaLayerNormSingle, modulation_rows
from omniforcing_rt.model.attention import Attention, Rope
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.rope import identity_rows, rope_tables

__all__ = ["AVTransformer", "KvHook", "Modality", "RopeSet", "TextContext", "TEMPORAL_CACHES"]

TEMPORAL_CACHES = ("video_self", "audio_self", "a2v", "v2a")
"""The four attentions whose keys live on the time axis (and are block-causal)."""

KvHook = Callable[[int, str, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""(layer, cache name, block keys [B,S,D], block values) -> (keys to attend, values to attend)."""


@dataclass(frozen=True)
class Modality:
    """Inputs of one stream for one forward pass."""

    latent: torch.Tensor
    """[B, T, C] patchified latent tokens."""
    sigma: torch.Tensor
    """[B, T] noise level of every token (sinks excluded)."""
    positions: torch.Tensor
    """[B, A, T, 2] position bounds (A = 3 video, 1 audio)."""


@dataclass(frozen=True)
class TextContext:
    """Per-prompt text keys/values, computed once by :meth:`AVTransformer.encode_text`."""

    video_kv: list[tuple[torch.Tensor, torch.Tensor]]
    """Per layer: attn2 keys and values [B, L, video_dim]."""
    audio_kv: list[tuple[torch.Tensor, torch.Tensor]]
    """Per layer: audio_attn2 keys and values [B, L, audio_dim]."""
    mask: torch.Tensor | None
    """Additive mask [B, 1, 1, L] (0 valid, -finfo.max padding) or None when nothing is padded."""


@dataclass(frozen=True)
class RopeSet:
    """The four rotary tables of one pass."""

    video: Rope
    audio: Rope
    video_cross: Rope
    audio_cross: Rope


class _FeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([_GeluProj(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class _GeluProj(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class _TextProjection(nn.Module):
    def __init__(self, dim_in: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(dim_in, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), eps=eps)


@dataclass
class _BlockIO:
    """Per-pass conditioning shared by every block (computed once per pass)."""

    video_mod: torch.Tensor  # [B, Tv|1, 6 Dv]
    audio_mod: torch.Tensor  # [B, Ta|1, 6 Da]
    video_cross_mod: torch.Tensor  # [B, Tv, 4 Dv]
    audio_cross_mod: torch.Tensor  # [B, Ta, 4 Da]
    video_gate_mod: torch.Tensor  # [B, Tv, Dv]
    audio_gate_mod: torch.Tensor  # [B, Ta, Da]
    rope: RopeSet
    masks: dict[str, object]
    kv: KvHook | None
    backend: str = "sdpa"


class AVBlock(nn.Module):
    """One dual-stream block (spec A.6)."""

    def __init__(self, cfg: ModelConfig, index: int) -> None:
        super().__init__()
        self.index = index
        self.eps = cfg.norm_eps
        vd, ad, eps = cfg.video_dim, cfg.audio_dim, cfg.norm_eps
        vh, vhd, ah, ahd = (
            cfg.num_attention_heads,
            cfg.attention_head_dim,
            cfg.audio_num_attention_heads,
            cfg.audio_attention_head_dim,
        )
        self.attn1 = Attention(vd, vd, vh, vhd, eps)
        self.attn2 = Attention(vd, cfg.cross_attention_dim, vh, vhd, eps)
        self.audio_attn1 = Attention(ad, ad, ah, ahd, eps)
        self.audio_attn2 = Attention(ad, cfg.audio_cross_attention_dim, ah, ahd, eps)
        # Both A<->V attentions use the audio head layout (32 x 64 at 19B).
        self.audio_to_video_attn = Attention(vd, ad, ah, ahd, eps)
        self.video_to_audio_attn = Attention(ad, vd, ah, ahd, eps)
        self.ff = _FeedForward(vd)
        self.audio_ff = _FeedForward(ad)
        self.scale_shift_table = nn.Parameter(torch.empty(6, vd))
        self.audio_scale_shift_table = nn.Parameter(torch.empty(6, ad))
        self.scale_shift_table_a2v_ca_video = nn.Parameter(torch.empty(5, vd))
        self.scale_shift_table_a2v_ca_audio = nn.Parameter(torch.empty(5, ad))

    def _self_attn(
        self,
        attn: Attention,
        x: torch.Tensor,
        rows: list[torch.Tensor],
        pe: Rope,
        name: str,
        io: _BlockIO,
        conv: Convention,
    ) -> torch.Tensor:
        shift, scale, gate = rows[0], rows[1], rows[2]
        h = _rms(x, self.eps) * (1 + scale) + shift
        q = attn.project_q(h, pe, conv.rope_type)
        k, v = attn.project_kv(h, pe, conv.rope_type)
        if io.kv is not None:
            k, v = io.kv(self.index, name, k, v)
        return x + attn.attend(q, k, v, io.masks.get(name), io.backend) * gate

    def _text_attn(
        self, attn: Attention, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None
    ) -> torch.Tensor:
        q = attn.project_q(_rms(x, self.eps), None, Convention().rope_type)
        return x + attn.attend(q, kv[0], kv[1], mask)

    def forward(
        self, vx: torch.Tensor, ax: torch.Tensor, text: TextContext, io: _BlockIO, conv: Convention
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v_rows = modulation_rows(self.scale_shift_table, io.video_mod)
        a_rows = modulation_rows(self.audio_scale_shift_table, io.audio_mod)
        vx = self._self_attn(self.attn1, vx, v_rows, io.rope.video, "video_self", io, conv)
        vx = self._text_attn(self.attn2, vx, text.video_kv[self.index], text.mask)
        ax = self._self_attn(self.audio_attn1, ax, a_rows, io.rope.audio, "audio_self", io, conv)
        ax = self._text_attn(self.audio_attn2, ax, text.audio_kv[self.index], text.mask)
        vx, ax = self._cross(vx, ax, io, conv)
        vx = vx + self.ff(_rms(vx, self.eps) * (1 + v_rows[4]) + v_rows[3]) * v_rows[5]
        ax = ax + self.audio_ff(_rms(ax, self.eps) * (1 + a_rows[4]) + a_rows[3]) * a_rows[5]
        return vx, ax

    def _cross(
        self, vx: torch.Tensor, ax: torch.Tensor, io: _BlockIO, conv: Convention
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Cross tables are ordered (scale, shift) for A->V then V->A, then the gate (spec A.4).
        v_ss = modulation_rows(self.scale_shift_table_a2v_ca_video[:4], io.video_cross_mod)
        a_ss = modulation_rows(self.scale_shift_table_a2v_ca_audio[:4], io.audio_cross_mod)
        v_gate = modulation_rows(self.scale_shift_table_a2v_ca_video[4:], io.video_gate_mod)[0]
        a_gate = modulation_rows(self.scale_shift_table_a2v_ca_audio[4:], io.audio_gate_mod)[0]
        nv, na = _rms(vx, self.eps), _rms(ax, self.eps)
        rt = conv.rope_type
        # A -> V: video queries, audio keys/values.
        a2v = self.audio_to_video_attn
        q = a2v.project_q(nv * (1 + v_ss[0]) + v_ss[1], io.rope.video_cross, rt)
        k, v = a2v.project_kv(na * (1 + a_ss[0]) + a_ss[1], io.rope.audio_cross, rt)
        if io.kv is not None:
            k, v = io.kv(self.index, "a2v", k, v)
        vx_new = vx + a2v.attend(q, k, v, io.masks.get("a2v"), io.backend) * v_gate
        # V -> A reads nv, the normalisation of the video stream before the A->V update.
        v2a = self.video_to_audio_attn
        q = v2a.project_q(na * (1 + a_ss[2]) + a_ss[3], io.rope.audio_cross, rt)
        k, v = v2a.project_kv(nv * (1 + v_ss[2]) + v_ss[3], io.rope.video_cross, rt)
        if io.kv is not None:
            k, v = io.kv(self.index, "v2a", k, v)
        ax_new = ax + v2a.attend(q, k, v, io.masks.get("v2a"), io.backend) * a_gate
        return vx_new, ax_new


class AVTransformer(nn.Module):
    """LTX-2 AV transformer. ``forward`` returns velocities; :meth:`to_x0` converts in fp32."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        vd, ad = cfg.video_dim, cfg.audio_dim
        self.patchify_proj = nn.Linear(cfg.in_channels, vd)
        self.audio_patchify_proj = nn.Linear(cfg.audio_in_channels, ad)
        self.adaln_single = AdaLayerNormSingle(vd, 6)
        self.audio_adaln_single = AdaLayerNormSingle(ad, 6)
        self.av_ca_video_scale_shift_adaln_single = AdaLayerNormSingle(vd, 4)
        self.av_ca_audio_scale_shift_adaln_single = AdaLayerNormSingle(ad, 4)
        self.av_ca_a2v_gate_adaln_single = AdaLayerNormSingle(vd, 1)
        self.av_ca_v2a_gate_adaln_single = AdaLayerNormSingle(ad, 1)
        self.caption_projection = _TextProjection(cfg.caption_channels, vd)
        self.audio_caption_projection = _TextProjection(cfg.caption_channels, ad)
        self.transformer_blocks = nn.ModuleList([AVBlock(cfg, i) for i in range(cfg.num_layers)])
        self.scale_shift_table = nn.Parameter(torch.empty(2, vd))
        self.audio_scale_shift_table = nn.Parameter(torch.empty(2, ad))
        self.proj_out = nn.Linear(vd, cfg.out_channels)
        self.audio_proj_out = nn.Linear(ad, cfg.audio_out_channels)
        self.attention_backend = "sdpa"
        """Temporal attentions' backend, one of ``ATTENTION_BACKENDS`` (text attention is always SDPA)."""
        if cfg.audio_sink_tokens:
            self.audio_sink_tokens = nn.Parameter(torch.empty(1, cfg.audio_sink_tokens, ad))

    # ------------------------------------------------------------------------------ text
    def encode_text(
        self, video_context: torch.Tensor, audio_context: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> TextContext:
        """Project the two text contexts and compute every layer's text K/V once per prompt.

        Args:
            video_context: [B, L, caption_channels] features for the video stream.
            audio_context: [B, L, caption_channels] features for the audio stream.
            attention_mask: [B, L] (1 valid, 0 padding; left padding) or None.
        """
        cc = self.config.caption_channels
        for name, t in (("video_context", video_context), ("audio_context", audio_context)):
            if t.ndim != 3 or t.shape[-1] != cc:
                raise InputError(f"{name} must be [B, L, {cc}], got {tuple(t.shape)}")
        if audio_context.shape[:2] != video_context.shape[:2]:
            raise InputError(
                f"audio_context {tuple(audio_context.shape)} and video_context {tuple(video_context.shape)} differ in B/L"
            )
        dtype = self.patchify_proj.weight.dtype
        vctx = self.caption_projection(video_context.to(dtype))
        actx = self.audio_caption_projection(audio_context.to(dtype))
        mask = None
        if attention_mask is not None:
            if attention_mask.shape != video_context.shape[:2]:
                raise InputError(
                    f"attention_mask must be {tuple(video_context.shape[:2])}, got {tuple(attention_mask.shape)}"
                )
            if attention_mask.dtype.is_floating_point:
                raise InputError("attention_mask must be integer or bool (1 = valid token)")
            m = attention_mask.to(torch.int64)
            mask = ((m - 1).to(dtype) * torch.finfo(dtype).max).reshape(m.shape[0], 1, 1, -1)
        vkv = [blk.attn2.project_kv(vctx, None, Convention().rope_type) for blk in self.transformer_blocks]
        akv = [blk.audio_attn2.project_kv(actx, None, Convention().rope_type) for blk in self.transformer_blocks]
        return TextContext(video_kv=vkv, audio_kv=akv, mask=mask)

    # ---------------------------------------------------------------------------- helpers
    def rope(
        self,
        video_positions: torch.Tensor,
        audio_positions: torch.Tensor,
        conv: Convention,
        dtype: torch.dtype,
        sinks: int = 0,
    ) -> RopeSet:
        """The four rotary tables; ``sinks`` identity rows are prepended to both audio tables."""
        cfg = self.config
        th = cfg.positional_embedding_theta
        video = rope_tables(
            video_positions, cfg.video_dim, cfg.num_attention_heads, cfg.positional_embedding_max_pos, th, conv, dtype
        )
        audio = rope_tables(
            audio_positions,
            cfg.audio_dim,
            cfg.audio_num_attention_heads,
            cfg.audio_positional_embedding_max_pos,
            th,
            conv,
            dtype,
        )
        xmax = (cfg.cross_pe_max_pos,)
        vcross = rope_tables(video_positions[:, :1], cfg.av_cross_dim, cfg.num_attention_heads, xmax, th, conv, dtype)
        # Split tables are cut per head with each stream's own head count, as LTX-2 does.
        across = rope_tables(audio_positions, cfg.av_cross_dim, cfg.audio_num_attention_heads, xmax, th, conv, dtype)
        return RopeSet(video, identity_rows(*audio, sinks), vcross, identity_rows(*across, sinks))

    @staticmethod
    def to_x0(x: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x0 = x - sigma * v in float32 (sigma broadcast per token: [B, T] for [B, T, C])."""
        return (x.float() - sigma.float().unsqueeze(-1) * velocity.float()).to(x.dtype)

    def _check_inputs(self, video: Modality, audio: Modality) -> None:
        cfg = self.config
        for name, m, ch, axes in (("video", video, cfg.in_channels, 3), ("audio", audio, cfg.audio_in_channels, 1)):
            lat = m.latent
            if lat.ndim != 3 or lat.shape[-1] != ch:
                raise InputError(f"{name}.latent must be [B, T, {ch}], got {tuple(lat.shape)}")
            if not lat.dtype.is_floating_point:
                raise InputError(f"{name}.latent must be floating point, got {lat.dtype}")
            b, t = lat.shape[:2]
            if tuple(m.sigma.shape) != (b, t):
                raise InputError(f"{name}.sigma must be [B, T] = {(b, t)}, got {tuple(m.sigma.shape)}")
            if tuple(m.positions.shape) != (b, axes, t, 2):
                raise InputError(f"{name}.positions must be {(b, axes, t, 2)}, got {tuple(m.positions.shape)}")
            if lat.device != self.patchify_proj.weight.device:
                raise InputError(f"{name}.latent is on {lat.device}, the model on {self.patchify_proj.weight.device}")
        if video.latent.shape[0] != audio.latent.shape[0]:
            raise InputError("video and audio batch sizes differ")

    def _conditioning(self, vs: torch.Tensor, as_: torch.Tensor, conv: Convention) -> tuple[torch.Tensor, ...]:
        """AdaLN outputs for both streams from per-token sigmas [B, Tv] and [B, Ta]."""
        mult = self.config.timestep_scale_multiplier
        gate_mult = float(conv.av_ca_timestep_scale_multiplier)
        video_mod, video_e = self.adaln_single(vs * mult)
        audio_mod, audio_e = self.audio_adaln_single(as_ * mult)
        video_cross, _ = self.av_ca_video_scale_shift_adaln_single(vs * mult)
        audio_cross, _ = self.av_ca_audio_scale_shift_adaln_single(as_ * mult)
        video_gate, _ = self.av_ca_a2v_gate_adaln_single(vs * gate_mult)
        audio_gate, _ = self.av_ca_v2a_gate_adaln_single(as_ * gate_mult)
        return video_mod, video_e, audio_mod, audio_e, video_cross, audio_cross, video_gate, audio_gate

    def _head(self, x: torch.Tensor, e: torch.Tensor, table: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        vals = table.to(e.dtype)[None, None] + e[:, :, None]  # [B, T, 2, D]; rows (shift, scale)
        x = F.layer_norm(x, (x.shape[-1],), eps=self.config.norm_eps)
        return proj(x * (1 + vals[:, :, 1]) + vals[:, :, 0])

    def forward(
        self,
        video: Modality,
        audio: Modality,
        text: TextContext,
        convention: Convention,
        *,
        masks: dict[str, object] | None = None,
        kv: KvHook | None = None,
        with_sinks: bool | None = None,
        capture: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass. Returns velocities (video [B, Tv, C_out], audio [B, Ta, C_out]).

        Args:
            video, audio: the two streams' tokens, per-token sigmas and positions.
            text: per-prompt text K/V from :meth:`encode_text`.
            convention: runtime convention (student / teacher).
            masks: optional masks keyed by ``TEMPORAL_CACHES`` names: dense bool tensors (True = may
                attend) or ``BlockCausalMask`` objects (block ids), sinks first on the audio axis.
                Text attention is never masked by these.
            kv: optional history hook (streaming); receives the block's K/V, returns what to attend.
            with_sinks: prepend the model's audio sink tokens (default: if the model has any).
            capture: optional dict filled with ``hidden.video_in``, ``hidden.block{i}.video`` etc.
        """
        self._check_inputs(video, audio)
        sinks = (
            self.config.audio_sink_tokens
            if with_sinks is None
            else (self.config.audio_sink_tokens if with_sinks else 0)
        )
        dtype = self.patchify_proj.weight.dtype
        vx = self.patchify_proj(video.latent.to(dtype))
        ax = self.audio_patchify_proj(audio.latent.to(dtype))
        a_sigma = audio.sigma
        if sinks:
            b = ax.shape[0]
            ax = torch.cat([self.audio_sink_tokens.to(dtype).expand(b, -1, -1), ax], dim=1)
            # Sinks take the first audio frame's noise level (spec B.4).
            a_sigma = torch.cat([a_sigma[:, :1].expand(-1, sinks), a_sigma], dim=1)
        v_mod, v_e, a_mod, a_e, v_cross, a_cross, v_gate, a_gate = self._conditioning(video.sigma, a_sigma, convention)
        io = _BlockIO(
            video_mod=v_mod, audio_mod=a_mod, video_cross_mod=v_cross, audio_cross_mod=a_cross,
            video_gate_mod=v_gate, audio_gate_mod=a_gate,
            rope=self.rope(video.positions, audio.positions, convention, dtype, sinks),
            masks=masks or {}, kv=kv, backend=self.attention_backend,
        )  # fmt: skip
        if capture is not None:
            capture["hidden.video_in"], capture["hidden.audio_in"] = vx, ax
        for blk in self.transformer_blocks:
            vx, ax = blk(vx, ax, text, io, convention)
            if capture is not None:
                capture[f"hidden.block{blk.index}.video"], capture[f"hidden.block{blk.index}.audio"] = vx, ax
        if sinks:  # sink outputs are never supervised: strip before the head
            ax, a_e = ax[:, sinks:], a_e[:, sinks:]
        video_v = self._head(vx, v_e, self.scale_shift_table, self.proj_out)
        audio_v = self._head(ax, a_e, self.audio_scale_shift_table, self.audio_proj_out)
        return video_v, audio_v
