"""Containers written as the stream goes: MP4 (H.264 + AAC), fragmented MP4 for live playback, WAV.

Every writer takes one block at a time (frames + stereo samples) and encodes it immediately, so a
viewer can start while generation continues; nothing is buffered until the end. Timestamps come from
sample/frame counters (video pts in frames at 1/fps, audio pts in samples at 1/rate), never from
wall time, so audio/video drift is zero by construction.

Fragmented MP4 (``movflags=frag_keyframe+empty_moov+default_base_moof``) with one keyframe per block
gives one self-contained ``moof+mdat`` fragment per block after an init segment: the form Media
Source Extensions and websocket players consume. :class:`FragmentSink` collects those bytes per
block for a server to forward.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from omniforcing_rt.errors import InputError

__all__ = ["FragmentSink", "Mp4StreamWriter", "WavStreamWriter", "to_uint8_frames"]


def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] float in [0, 1] (or uint8 [N, H, W, 3]) -> uint8 [N, H, W, 3]."""
    if frames.dtype == torch.uint8:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"uint8 frames must be [N, H, W, 3], got {tuple(frames.shape)}")
        return frames.cpu().numpy()
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"float frames must be [N, 3, H, W] in [0, 1], got {tuple(frames.shape)}")
    x = (frames.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _audio_array(audio: torch.Tensor, channels: int) -> np.ndarray:
    if audio.ndim != 2 or audio.shape[0] != channels:
        raise InputError(f"audio must be [{channels}, S] float samples, got {tuple(audio.shape)}")
    return audio.detach().float().clamp(-1, 1).cpu().numpy().astype(np.float32)


class Mp4StreamWriter:
    """H.264 + AAC MP4 written block by block (optionally fragmented for live playback)."""

    def __init__(
        self,
        target: str | Path | BinaryIO,
        width: int,
        height: int,
        *,
        fps: int = 24,
        sample_rate: int = 24_000,
        channels: int = 2,
        fragmented: bool = False,
        gop_frames: int = 24,
    ) -> None:
        import av

        if width % 2 or height % 2:
            raise InputError(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if fragmented else {}
        self._container = av.open(
            target if not isinstance(target, Path) else str(target), mode="w", format="mp4", options=options
        )
        self._video = self._container.add_stream("libx264", rate=fps)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        # A keyframe exactly every block: each fragment then decodes on its own.
        self._video.codec_context.gop_size = gop_frames
        self._video.codec_context.options = {"keyint_min": str(gop_frames), "sc_threshold": "0", "preset": "veryfast"}
        self._audio = self._container.add_stream("aac", rate=sample_rate)
        self._audio.layout = "stereo" if channels == 2 else "mono"
        self.channels, self.fps, self.sample_rate = channels, fps, sample_rate
        self.frames_written = 0
        self.samples_written = 0
        self._closed = False

    def write_block(self, frames: torch.Tensor, audio: torch.Tensor, *, keyframe: bool = False) -> None:
        """Encode one block: frames [N, 3, H, W] in [0, 1] (or uint8 NHWC), audio [C, S] in [-1, 1].

        ``keyframe`` forces the block's first frame to be a key frame (IDR), so a fragmented file
        starts one fragment per block even when blocks differ in length (25 then 24 frames).
        """
        import av

        if self._closed:
            raise InputError("writer is closed")
        pix = to_uint8_frames(frames)
        if pix.shape[1:3] != (self._video.height, self._video.width):
            raise InputError(
                f"frames are {pix.shape[2]}x{pix.shape[1]}, the stream is {self._video.width}x{self._video.height}"
            )
        for i, img in enumerate(pix):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            if keyframe and i == 0:
                vf.pict_type = av.video.frame.PictureType.I
            vf.pts = self.frames_written
            self.frames_written += 1
            self._container.mux(self._video.encode(vf))
        samples = _audio_array(audio, self.channels)
        af = av.AudioFrame.from_ndarray(samples, format="fltp", layout=self._audio.layout.name)
        af.sample_rate = self.sample_rate
        af.pts = self.samples_written
        self.samples_written += samples.shape[1]
        self._container.mux(self._audio.encode(af))

    def close(self) -> None:
        """Flush both encoders and finish the file."""
        if self._closed:
            return
        self._container.mux(self._video.encode(None))
        self._container.mux(self._audio.encode(None))
        self._container.close()
        self._closed = True

    def __enter__(self) -> Mp4StreamWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FragmentSink(io.RawIOBase):
    """A write-only file that hands out the bytes written since the last :meth:`take`.

    Give it to :class:`Mp4StreamWriter(fragmented=True)`; after each block, :meth:`take` returns
    the init segment (first time) and the block's fragments, ready for MSE / a websocket.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        self.total = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._pending += bytes(b)
        self.total += len(b)
        return len(b)

    def take(self) -> bytes:
        """Bytes written since the previous call."""
        out, self._pending = bytes(self._pending), bytearray()
        return out


class WavStreamWriter:
    """16-bit PCM WAV written block by block (the header's length is patched on close)."""

    def __init__(self, path: str | Path, sample_rate: int = 24_000, channels: int = 2) -> None:
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 (closed in close())
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self.channels = channels
        self.samples_written = 0

    def write_block(self, audio: torch.Tensor) -> None:
        """Append [C, S] float samples in [-1, 1]."""
        x = _audio_array(audio, self.channels)
        pcm = np.round(x.T * 32767.0).astype("<i2")
        self._wav.writeframes(pcm.tobytes())
        self.samples_written += x.shape[1]

    def close(self) -> None:
        self._wav.close()

    def __enter__(self) -> WavStreamWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
