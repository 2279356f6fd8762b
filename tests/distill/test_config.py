"""Config: stage defaults, presets, file loading, and errors that list every problem."""

import json

import pytest

from omniforcing_rt.distill import build_config, load_config, run_stage
from omniforcing_rt.errors import CheckpointError, ConfigError


def test_stage_defaults_follow_the_official_configs():
    ode = build_config("ode", teacher="t", ode_pairs="p")
    assert ode.optim.lr == 2e-4 and ode.optim.betas == (0.9, 0.999) and ode.optim.weight_decay == 0
    assert ode.student.step_list == (1000, 909, 725, 421, 0) and ode.student.audio_sigma_mapping == "own_block"
    dmd = build_config("dmd", teacher="t")
    assert dmd.optim.betas == (0.0, 0.999) and dmd.optim.weight_decay == 0.01 and dmd.optim.lr == 2e-5
    assert dmd.dmd.critic_optim.betas == (0.0, 0.999) and dmd.dmd.gen_update_ratio == 5
    assert (dmd.dmd.real_cfg_video, dmd.dmd.real_cfg_audio) == (3.0, 5.0)
    assert (dmd.train.ema_decay, dmd.train.ema_start) == (0.99, 200)
    assert (dmd.dmd.min_t, dmd.dmd.max_t) == (20, 980)
    bidir = build_config("bidir-dmd", teacher="t")
    assert bidir.student.step_list == (1000, 757, 522, 0) and bidir.optim.grad_clip == 3.0
    assert bidir.student.convention == "teacher"
    g = build_config("ode-pairs", teacher="t").pairs.guider
    assert (g.video_cfg, g.audio_cfg, g.video_stg, g.video_modality, g.video_rescale, g.stg_blocks) == (
        3.0, 5.0, 1.0, 3.0, 0.7, (29,),
    )  # fmt: skip


def test_every_problem_is_reported_at_once():
    data = {
        "bogus": 1,
        "optim": {"lr": -1, "betas": [0.9]},
        "train": {"steps": "many", "parallel": "ddp"},
        "student": {"layout": "weird", "step_list": [1000, 500]},
        "pairs": {"guider": {"video_rescale": 2.0}},
    }
    with pytest.raises(ConfigError) as e:
        build_config("ode", data, teacher="t", ode_pairs="p")
    text = "\n".join(e.value.problems)
    for needle in ("bogus", "lr", "betas", "train.steps", "parallel", "layout", "step_list", "video_rescale"):
        assert needle in text, needle


def test_missing_inputs_are_config_errors():
    with pytest.raises(ConfigError, match="teacher is required"):
        build_config("dmd")
    with pytest.raises(ConfigError, match="ode_pairs"):
        build_config("ode", teacher="t")
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config("ode", preset="huge")


def test_files_json_and_toml(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"teacher": "t", "train": {"steps": 7}, "optim": {"lr": 1e-3}}))
    cfg = load_config(tmp_path / "a.json", "dmd")
    assert cfg.train.steps == 7 and cfg.optim.lr == 1e-3 and cfg.optim.betas == (0.0, 0.999)
    (tmp_path / "b.toml").write_text('teacher = "t"\n[student]\naudio_sink_tokens = 16\nlayout = "paper"\n')
    cfg = load_config(tmp_path / "b.toml", "dmd")
    assert cfg.student.audio_sink_tokens == 16 and cfg.student.layout == "paper"
    assert build_config("dmd", cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.json", "ode")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(tmp_path / "c.json", "ode")
    (tmp_path / "d.json").write_text(json.dumps({"stage": "dmd", "teacher": "t"}))
    with pytest.raises(ConfigError, match="another stage"):
        load_config(tmp_path / "d.json", "ode")


def test_missing_teacher_is_a_clear_error(tmp_path):
    cfg = build_config("dmd", teacher=str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match="teacher not found"):
        run_stage(cfg, tmp_path / "out", progress=False)
