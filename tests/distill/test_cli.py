"""``omniforcing-rt distill``: a run from the command line, and clear errors."""

import json

from omniforcing_rt.cli import main

from ._helpers import TEST_MODEL


def _cfg(tmp_path, **data):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_tiny_preset_runs_and_writes_metrics_and_plot(tmp_path, capsys):
    # the preset makes its own teacher and ODE pairs; the file only shrinks them for the test
    small = _cfg(tmp_path, synthetic_teacher=TEST_MODEL, text_tokens=4, video_latents=7,
                 pairs={"num_pairs": 4, "batch_size": 4})  # fmt: skip
    out = tmp_path / "run"
    rc = main(["distill", "ode", "--preset", "tiny", "--config", small, "--steps", "3", "--out", str(out), "--quiet"])
    assert rc == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3] and all("loss" in r for r in lines)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "ode_pairs" / "index.json").exists() and (out / "teacher" / "model.json").exists()
    assert (out / "export" / "generator" / "model.json").exists()
    assert "loss" in capsys.readouterr().out


def test_bad_config_lists_every_problem(tmp_path, capsys):
    bad = _cfg(tmp_path, teacher="t", optim={"lr": 0}, train={"steps": -1}, colour="red")
    rc = main(["distill", "dmd", "--config", bad, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "ConfigError" in err
    assert "optim.lr" in err and "train.steps" in err and "colour" in err


def test_missing_teacher_and_mismatched_pairs(tmp_path, capsys, assets):
    rc = main(["distill", "dmd", "--teacher", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "teacher not found" in capsys.readouterr().err
    cfg = _cfg(tmp_path, text_tokens=4, video_latents=10)  # the pairs hold 7 video latents
    rc = main(["distill", "ode", "--preset", "tiny", "--config", cfg, "--teacher", str(assets.teacher),
               "--ode-pairs", str(assets.pairs), "--out", str(tmp_path / "o2"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "do not match the student" in err and "video" in err
