"""The evaluator, the dataset writer and the ``world`` / ``evaluate`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omniforcing_rt.cli import main
from omniforcing_rt.errors import InputError
from omniforcing_rt.world import command
from omniforcing_rt.world.dataset import clip_seed, ground_truth, make_clip, write_dataset
from omniforcing_rt.world.evaluate import METRIC_KEYS, evaluate_generator, ground_truth_generator
from omniforcing_rt.world.scene import WorldConfig
from omniforcing_rt.world.score import SYNC_CAP_MS

CFG = WorldConfig()


def test_ground_truth_row_is_the_sanity_floor() -> None:
    row = evaluate_generator(ground_truth_generator(CFG), CFG, 3)
    assert row["status"] == "ok" and set(METRIC_KEYS) <= set(row)
    assert row["sync_error_ms"] < 5.0 and row["prompt_accuracy"] == 1.0 and row["onset_recall"] > 0.8
    assert 0 < row["rtf"] < 1.0 and row["seconds_per_clip"] > 0 and row["ttfc_s"] > 0
    assert [r["seed"] for r in row["per_clip"]] == [clip_seed("heldout", i) for i in range(3)]


def test_a_model_that_ignores_the_world_scores_badly() -> None:
    def noise(caption: str, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        rng = np.random.default_rng(seed)
        frames = rng.integers(0, 256, (CFG.frames, CFG.height, CFG.width, 3), dtype=np.uint8)
        audio = (0.1 * rng.standard_normal((2, CFG.audio_samples))).astype(np.float32)
        return frames, audio, {"seconds": 1.0, "ttfc_s": 0.5}

    gt = evaluate_generator(ground_truth_generator(CFG), CFG, 2)
    row = evaluate_generator(noise, CFG, 2)
    assert row["sync_error_ms"] == SYNC_CAP_MS or row["sync_error_ms"] > 100
    assert row["prompt_accuracy"] < 0.5
    seen = [v for clip in row["per_clip"] for k, v in clip["attributes"].items() if k.startswith("seen:")]
    assert seen and not any(seen)  # colourful noise is not a ball
    assert row["video_fidelity"] > 100 * gt["video_fidelity"] and row["audio_fidelity"] > 10 * gt["audio_fidelity"]
    assert row["rtf"] == pytest.approx(1.0 / CFG.seconds) and row["ttfc_s"] == 0.5


def test_generator_output_is_checked() -> None:
    with pytest.raises(InputError, match="invalid clip"):
        evaluate_generator(lambda c, s: (np.zeros((3, 4, 4, 3)), np.zeros((2, 9)), {}), CFG, 2)


def test_dataset_and_ground_truth_json(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path, CFG, "train", 2, start=5, fmt="npz", progress=False)
    assert [c["seed"] for c in manifest["clips"]] == [5, 6]
    with np.load(tmp_path / "clip_000005.npz") as z:
        clip = make_clip(CFG, 5)
        assert np.array_equal(z["frames"], clip.frames) and np.array_equal(z["audio"], clip.audio)
    meta = json.loads((tmp_path / "clip_000005.json").read_text())
    assert meta == json.loads(json.dumps(ground_truth(clip.scene)))
    assert meta["caption"] == clip.caption and len(meta["impacts"]) == len(clip.scene.events)
    assert json.loads((tmp_path / "dataset.json").read_text())["world"]["frames"] == 49


def test_world_sample_and_score_mp4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "clip.mp4"
    assert main(["world", "sample", "--index", "1", "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "clip.json").exists()
    capsys.readouterr()
    assert main(["world", "score", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prompt_accuracy"] == 1.0 and report["sync_error_ms"] < 8.0  # through H.264 + AAC


def test_evaluate_command_writes_teacher_and_student(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import omniforcing_rt.world.model_clip as model_clip

    monkeypatch.setattr(
        model_clip, "streaming_clip_generator", lambda name, cfg, threads=None: ground_truth_generator(cfg)
    )
    path = tmp_path / "eval.json"
    assert main(["evaluate", "--count", "2", "--json", str(path), "--quiet"]) == 0
    report = json.loads(path.read_text())
    assert report["teacher"]["status"] == "unavailable" and "teacher" in report["teacher"]["reason"]
    for row in ("teacher", "student", "ground_truth"):
        assert {"sync_error_ms", "prompt_accuracy", "seconds_per_clip", "ttfc_s", "rtf"} <= set(report[row])
    assert report["student"]["prompt_accuracy"] == 1.0
    assert report["teacher"]["reason"] == command.TEACHER_UNAVAILABLE


def test_default_model_fits_the_world() -> None:
    from omniforcing_rt.world.model_clip import streaming_clip_generator

    short = WorldConfig(frames=25)  # one block of the release layout keeps the test fast
    frames, audio, timings = streaming_clip_generator("default", short)("one ball, a red one, bounces slowly", 3)
    assert frames.shape == (25, short.height, short.width, 3) and frames.dtype == np.uint8
    assert audio.shape == (2, short.audio_samples) and audio.dtype == np.float32
    assert 0 < timings["ttfc_s"] <= timings["seconds"]
