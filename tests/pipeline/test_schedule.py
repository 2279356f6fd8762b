import json

import pytest
import torch
from safetensors.torch import load_file
from tests.helpers.tiny_model import TINY_REF, need

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.pipeline.schedule import PAPER_STEP_LIST, RELEASE_STEP_LIST, renoise, student_sigmas


def test_release_sigmas():
    s = student_sigmas(RELEASE_STEP_LIST)
    assert s.dtype == torch.float32
    torch.testing.assert_close(s, torch.tensor([1.0, 0.906229, 0.726524, 0.420719, 0.0]), atol=1e-6, rtol=0)


def test_paper_and_fast_sigmas():
    torch.testing.assert_close(student_sigmas(PAPER_STEP_LIST)[:3], torch.tensor([1.0, 0.750697, 0.544771]), atol=1e-6, rtol=0)
    torch.testing.assert_close(student_sigmas([1000, 750, 500, 0]), torch.tensor([1.0, 0.750697, 0.488430, 0.0]), atol=1e-6, rtol=0)


def test_fixture_rollout_sigmas_exact():
    root = need(TINY_REF)
    cfg = json.loads((root / "config.json").read_text())
    io = load_file(str(root / "io.safetensors"))
    steps = cfg["causal_rollout"]["denoising_step_list"]
    got = student_sigmas(steps)
    assert torch.equal(got, io["causal.sigmas"].to(torch.float32))


@pytest.mark.parametrize("bad", [[], [1000, 1000, 0], [500, 700], [1001, 0], [1000, -1]])
def test_bad_lists(bad):
    with pytest.raises(ConfigError):
        student_sigmas(bad)


def test_renoise_rule():
    x0, eps = torch.full((2, 3), 2.0), torch.full((2, 3), -1.0)
    torch.testing.assert_close(renoise(x0, eps, 0.25), torch.full((2, 3), 1.25))
    with pytest.raises(ConfigError):
        renoise(x0, eps[:1], 0.5)
