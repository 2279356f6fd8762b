"""Two processes (gloo, FSDP2 fully_shard) take exactly the steps one process takes on the same global batch.

One spawn runs four jobs in the same 2-process group: an ODE step, its resume to a second step, an ODE
step with gradient accumulation (FSDP reduce-scatter skipped on the first micro-step), and a DMD step
(generator, critic, EMA). Each is compared with a single-process run of the same global batch.
"""

import json

from omniforcing_rt.distill import build_config, run_stage
from omniforcing_rt.distill.checkpoint import load_checkpoint
from omniforcing_rt.distill.distributed import spawn

from ._helpers import sharded_worker, tiny_config


def _metrics(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _close(a, b, rel):
    return abs(a - b) <= rel * max(1.0, abs(b))


def test_sharded_steps_equal_single_process_steps(assets, tmp_path):
    common = {"teacher": str(assets.teacher), "optim": {"lr": 1e-4}, "dmd": {"critic_optim": {"lr": 1e-4}}}
    ode = {"ode_pairs": str(assets.pairs), **common}
    two = {  # name -> (config of the 2-process job, global batch size)
        "ode1": (tiny_config("ode", train={"steps": 1, "batch_size": 1}, **ode), 2),
        "ode": (tiny_config("ode", train={"steps": 2, "batch_size": 1}, **ode), 2),  # resumes ode1's output
        "acc": (tiny_config("ode", train={"steps": 1, "batch_size": 1, "grad_accum": 2}, **ode), 4),
        "dmd": (tiny_config("dmd", train={"steps": 1, "batch_size": 1, "ema_start": 0, "ema_decay": 0.9}, **common), 2),
    }
    assert two["ode"][0].train.parallel == "auto"  # -> FSDP2 with 2 processes, none with 1
    out2 = {k: tmp_path / f"{'ode' if k == 'ode1' else k}_2proc" for k in two}
    spawn(sharded_worker, 2, ([(c.to_dict(), str(out2[k])) for k, (c, _) in two.items()],))
    for name in ("ode", "acc", "dmd"):
        cfg, global_batch = two[name]
        single = cfg.to_dict()
        single["train"].update(batch_size=global_batch, grad_accum=1)
        out1 = tmp_path / f"{name}_1proc"
        run_stage(build_config(cfg.stage, single), out1, progress=False)
        ma, mb = _metrics(out2[name]), _metrics(out1)
        assert len(ma) == len(mb) == cfg.train.steps
        for ra, rb in zip(ma, mb):
            assert _close(ra["loss"], rb["loss"], 1e-6), (name, ra["loss"], rb["loss"])
            for net in ("generator", "critic"):
                if f"{net}_grad_norm" in rb:
                    assert _close(ra[f"{net}_grad_norm"], rb[f"{net}_grad_norm"], 1e-5), (name, net)
        step = cfg.train.steps
        a = load_checkpoint(out2[name] / "checkpoints" / f"step_{step:08d}.pt")
        b = load_checkpoint(out1 / "checkpoints" / f"step_{step:08d}.pt")
        for net in [k for k in ("generator", "critic", "generator_ema") if k in b]:
            assert net in a, (name, net)
            worst = max((a[net][k] - b[net][k]).abs().max().item() for k in b[net])
            assert worst <= 1e-6, (name, net, worst)
    assert "generator_ema" in load_checkpoint(out2["dmd"] / "checkpoints" / "step_00000001.pt")
