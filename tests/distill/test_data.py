"""ODE pairs: the documented sharded format, trajectories at the student's sigmas, keyed sampling."""

import json

import pytest
import torch
from safetensors.torch import save_file

from omniforcing_rt.distill.data import PAIRS_FORMAT, OdePairs, PromptBank, micro_slots, sample_indices
from omniforcing_rt.distill.ode_pairs import _pair_noise
from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.pipeline.schedule import student_sigmas


def test_index_and_shards(assets):
    index = json.loads((assets.pairs / "index.json").read_text())
    assert index["format"] == PAIRS_FORMAT and index["version"] == 1 and index["num_pairs"] == 8
    for key in ("sigmas", "step_list", "teacher_steps", "video_shape", "audio_shape", "text_shape", "dtype",
                "teacher", "teacher_convention", "guider", "seed", "prompts", "negative_prompt", "shards"):  # fmt: skip
        assert key in index, key
    assert [s["count"] for s in index["shards"]] == [4, 4] and [s["first"] for s in index["shards"]] == [0, 4]
    assert index["video_shape"] == [5, 7, 8, 2, 3] and index["audio_shape"] == [5, 51, 8]
    pairs = OdePairs(assets.pairs)
    assert pairs.verify() == []
    assert torch.allclose(torch.tensor(pairs.sigmas), student_sigmas((1000, 909, 725, 421, 0)))
    b = pairs.load([5, 0, 7])
    assert b["video"].shape == (3, 5, 7, 8, 2, 3) and b["audio"].shape == (3, 5, 51, 8)
    assert b["video_context"].shape == (3, 4, 12) and b["text_mask"].dtype == torch.int64
    # trajectory point 0 is the pair's keyed initial noise at sigma 1; the endpoint moved away from it
    nv, na = _pair_noise(index["seed"], 5, ((7, 8, 2, 3), (51, 8)))
    assert torch.equal(b["video"][0, 0], nv) and torch.equal(b["audio"][0, 0], na)
    assert (b["video"][0, -1] - nv).abs().mean() > 0.1
    assert b["prompt_index"].tolist() == [5 % len(index["prompts"]), 0, 7 % len(index["prompts"])]
    assert torch.isfinite(b["video"]).all() and torch.isfinite(b["audio"]).all()


def test_compatibility_problems(assets):
    pairs = OdePairs(assets.pairs)
    ok = dict(video_frames=7, audio_frames=51, grid_hw=(2, 3), video_channels=8, audio_channels=8,
              caption_channels=12, sigmas=pairs.sigmas)  # fmt: skip
    assert pairs.problems_for(**ok) == []
    bad = pairs.problems_for(**{**ok, "video_frames": 10, "audio_frames": 76, "sigmas": [1.0, 0.0]})
    assert len(bad) == 3


def test_missing_or_corrupt_pairs(tmp_path):
    with pytest.raises(CheckpointError, match="index.json not found"):
        OdePairs(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not an"):
        OdePairs(tmp_path)


def test_keyed_sampling_does_not_depend_on_the_process_split():
    one = [s for m in range(2) for s in micro_slots(0, 1, 2, m)]
    two = sorted(s for r in range(2) for s in micro_slots(r, 2, 1, 0) + micro_slots(r, 2, 1, 1))
    assert one == two == [0, 1, 2, 3]
    # one epoch visits every sample exactly once
    seen = [i for step in range(3) for i in sample_indices(0, step, range(4), 4, 12)]
    assert sorted(seen) == list(range(12))


def test_prompt_features_file(tmp_path):
    save_file({"video": torch.randn(3, 5, 12), "audio": torch.randn(3, 5, 12)}, str(tmp_path / "f.safetensors"))
    bank = PromptBank(["a", "b"], "", 5, 12, str(tmp_path / "f.safetensors"))
    v, _, m = bank.negative(2)
    assert v.shape == (2, 5, 12) and m.sum() == 10
    with pytest.raises(ConfigError, match="prompts \\+ negative"):
        PromptBank(["a", "b", "c"], "", 5, 12, str(tmp_path / "f.safetensors"))
