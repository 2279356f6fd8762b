"""Where decoded blocks go: an MP4 (H.264 + AAC) written as the stream goes, a WAV, fMP4 fragments.

:class:`AvWriter` is a sink for :class:`~omniforcing_rt.media.decode_worker.MediaBlock`: each
block is encoded the moment it is decoded (:class:`~omniforcing_rt.media.containers.Mp4StreamWriter`
/ :class:`~omniforcing_rt.media.containers.WavStreamWriter`); timestamps are the blocks' frame
and sample counters, never wall time.

Fragments (``--fragments DIR``): a second, fragmented MP4 (``frag_keyframe+empty_moov``) whose
first frame of every block is forced to a key frame, so the stream splits into an init segment
(``init.mp4`` = ``ftyp`` + ``moov``) and exactly one ``moof`` + ``mdat`` fragment per block
(``frag_00000.m4s``, ...): what Media Source Extensions or a websocket player consume. The muxer
closes a fragment when the next key frame arrives, so fragment k is on disk once block k+1 has
been written (or at the end). ``init.mp4`` followed by the fragments in order is a playable MP4.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniforcing_rt.errors import InputError
from omniforcing_rt.media.containers import FragmentSink, Mp4StreamWriter, WavStreamWriter
from omniforcing_rt.media.decode_worker import MediaBlock

__all__ = ["AvWriter", "FragmentFiles", "split_boxes"]

_FRAGMENT_BOXES = ("styp", "sidx", "prft", "moof")


def split_boxes(data: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """Complete top-level ISO-BMFF boxes at the start of ``data`` and the incomplete remainder.

    Returns:
        ([(type, box bytes including its header), ...], remainder).
    """
    boxes, off = [], 0
    while len(data) - off >= 8:
        size, kind = struct.unpack(">I4s", data[off : off + 8])
        if size == 1:
            if len(data) - off < 16:
                break
            size = struct.unpack(">Q", data[off + 8 : off + 16])[0]
        if size < 8:
            raise InputError(f"malformed MP4 box {kind!r} of size {size} at byte {off}")
        if len(data) - off < size:
            break
        boxes.append((kind.decode("latin-1"), data[off : off + size]))
        off += size
    return boxes, data[off:]


@dataclass
class FragmentFiles:
    """Cuts a fragmented-MP4 byte stream into ``init.mp4`` and one ``frag_NNNNN.m4s`` per fragment."""

    directory: Path
    """Output directory (created)."""
    init_path: Path | None = None
    """The init segment once written."""
    fragments: list[Path] = field(default_factory=list)
    """Fragment files in order."""
    dropped: list[str] = field(default_factory=list)
    """Box types after the last fragment that belong to no fragment (the ``mfra`` index)."""
    _pending: bytes = b""
    _init: bytearray = field(default_factory=bytearray)
    _current: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def feed(self, data: bytes) -> list[Path]:
        """Consume more bytes of the stream; return the files completed by them."""
        boxes, self._pending = split_boxes(self._pending + data)
        written = []
        for kind, box in boxes:
            if self.init_path is None and kind not in _FRAGMENT_BOXES:
                self._init += box
                continue
            if self.init_path is None:
                self.init_path = self.directory / "init.mp4"
                self.init_path.write_bytes(bytes(self._init))
                written.append(self.init_path)
            if kind not in _FRAGMENT_BOXES and not self._current:
                self.dropped.append(kind)
                continue
            self._current += box
            if kind == "mdat":
                path = self.directory / f"frag_{len(self.fragments):05d}.m4s"
                path.write_bytes(bytes(self._current))
                self.fragments.append(path)
                written.append(path)
                self._current = bytearray()
        return written

    def close(self) -> None:
        """Check that nothing is left half-written."""
        if self._pending or self._current:
            raise InputError(f"fragmented stream ended inside a box ({len(self._pending) + len(self._current)} bytes)")


class AvWriter:
    """Sink writing each :class:`MediaBlock` to an MP4, a WAV and/or per-block fMP4 fragments.

    Args:
        width, height: frame size in pixels (even).
        fps, sample_rate: stream rates (24, 24000).
        mp4: MP4 path (H.264 + AAC; ``moov`` at the end), or None.
        wav: 16-bit stereo WAV path, or None.
        fragments: directory for ``init.mp4`` + one fragment per block, or None.
        gop_frames: key-frame interval upper bound (blocks force one at their start anyway).
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        fps: int = 24,
        sample_rate: int = 24_000,
        mp4: str | Path | None = None,
        wav: str | Path | None = None,
        fragments: str | Path | None = None,
        gop_frames: int = 25,
    ) -> None:
        if mp4 is None and wav is None and fragments is None:
            raise InputError("AvWriter needs at least one of mp4, wav, fragments")
        kw: dict[str, Any] = dict(fps=fps, sample_rate=sample_rate, channels=2, gop_frames=gop_frames)
        self.paths = {"mp4": mp4, "wav": wav, "fragments": fragments}
        if mp4 is not None:
            Path(mp4).parent.mkdir(parents=True, exist_ok=True)
        if wav is not None:
            Path(wav).parent.mkdir(parents=True, exist_ok=True)
        self._mp4 = Mp4StreamWriter(Path(mp4), width, height, **kw) if mp4 is not None else None
        self._wav = WavStreamWriter(Path(wav), sample_rate, 2) if wav is not None else None
        self._sink = FragmentSink() if fragments is not None else None
        self._frag_mp4 = Mp4StreamWriter(self._sink, width, height, fragmented=True, **kw) if self._sink else None
        self.fragment_files = FragmentFiles(Path(fragments)) if fragments is not None else None
        self.blocks_written = 0
        self.frames_written = 0
        self.samples_written = 0
        self._closed = False

    def write(self, block: MediaBlock) -> None:
        """Encode one block (called on the decode thread, in block order)."""
        if self._closed:
            raise InputError("AvWriter is closed")
        if (block.frame_start, block.sample_start) != (self.frames_written, self.samples_written):
            raise InputError(
                f"block {block.index} starts at frame {block.frame_start} / sample {block.sample_start}, "
                f"expected {self.frames_written} / {self.samples_written}"
            )
        if self._mp4 is not None:
            self._mp4.write_block(block.frames, block.audio, keyframe=True)
        if self._wav is not None:
            self._wav.write_block(block.audio)
        if self._frag_mp4 is not None and self._sink is not None and self.fragment_files is not None:
            self._frag_mp4.write_block(block.frames, block.audio, keyframe=True)
            self.fragment_files.feed(self._sink.take())
        self.blocks_written += 1
        self.frames_written += block.num_frames
        self.samples_written += block.num_samples

    def close(self) -> dict[str, Any]:
        """Finish every file; returns what was written (paths, counts, fragment files)."""
        if not self._closed:
            self._closed = True
            for w in (self._mp4, self._wav, self._frag_mp4):
                if w is not None:
                    w.close()
            if self.fragment_files is not None and self._sink is not None:
                self.fragment_files.feed(self._sink.take())
                self.fragment_files.close()
        return self.summary()

    def abort(self) -> None:
        """Close whatever is open, ignoring encoder errors (after a failure elsewhere)."""
        self._closed = True
        for w in (self._mp4, self._wav, self._frag_mp4):
            if w is not None:
                with contextlib.suppress(Exception):  # best effort on the error path
                    w.close()

    def summary(self) -> dict[str, Any]:
        """Paths and counts (JSON-able)."""
        out: dict[str, Any] = {k: str(v) for k, v in self.paths.items() if v is not None}
        out.update(blocks=self.blocks_written, frames=self.frames_written, samples=self.samples_written)
        if self.fragment_files is not None:
            ff = self.fragment_files
            out["fragment_files"] = [p.name for p in ([ff.init_path] if ff.init_path else []) + ff.fragments]
        return out

    def __enter__(self) -> AvWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
