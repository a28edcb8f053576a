"""Collapse rules of srlm.health on hand-made metrics records."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from srlm import health, rewards

from tests.conftest import REPO

# The validated config slice the check_health rule passes (config.yaml's values: no defaults in srlm.health).
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
H = CONFIG["health"]
FMT, ACC = "rewards/format_reward/mean", "rewards/accuracy_reward/mean"
REWARDS = {FMT: {"correct": 1.0, "incorrect": -1.0}, ACC: {"correct": 1.0, "incorrect": -1.0}}


def log(fmt: list[float], acc: list[float] | None = None, **extra) -> list[dict]:
    acc = acc if acc is not None else [-1.0] * len(fmt)
    return [
        {"step": i + 1, "loss": 0.1, "grad_norm": 1.0, FMT: f, ACC: a, **extra}
        for i, (f, a) in enumerate(zip(fmt, acc))
    ]


def test_non_finite_loss_or_grad_collapses_any_stage():
    recs = [{"step": 1, "loss": 2.0, "grad_norm": 1.0}, {"step": 2, "loss": 2.5, "grad_norm": math.nan}]
    assert health.assess(recs, H) == ("collapsed", "non-finite grad_norm (nan) at step 2")
    recs = [{"step": 1, "loss": math.inf}]
    assert health.assess(recs, H, REWARDS) == ("collapsed", "non-finite loss (inf) at step 1")
    assert health.assess([{"step": 1, "loss": 2.0, "grad_norm": 1.0}], H) == ("ok", None)


def test_sft_whose_gradient_vanished_on_an_unsolved_loss_collapses():
    # Measured with padding-free SFT at lr 1e3: the loss stays finite and flat, every gradient norm is 0.
    recs = [{"step": i + 1, "loss": 2.0 - 0.1 * i, "grad_norm": 1.5} for i in range(4)]
    recs += [{"step": i + 5, "loss": 11.9, "grad_norm": 0.0} for i in range(8)]
    assert health.assess(recs, H) == (
        "collapsed",
        "gradient norm 0 with loss 11.9 in each of the last 4 of 12 logs: the weights stopped moving",
    )
    # One moving step in the tail, a solved loss, or too few logs: not flagged.
    assert health.assess(recs[:-1] + [{"step": 12, "loss": 11.9, "grad_norm": 0.2}], H) == ("ok", None)
    assert health.assess([{**r, "loss": 0.0} if r["grad_norm"] == 0 else r for r in recs], H) == ("ok", None)
    assert health.assess(recs[-3:], H) == ("ok", None)
    # GRPO: a zero gradient can be success (every group ties); the reward rules judge it.
    assert health.assess(log([1.0] * 12, [1.0] * 12, grad_norm=0.0), H, REWARDS) == ("ok", None)


def test_reward_pinned_at_minimum_after_learning_collapses():
    status, reason = health.assess(log([0.5, 0.6, 0.7, 0.4, -0.9, -1.0, -1.0, -1.0]), H, REWARDS)
    assert status == "collapsed"
    assert reason.startswith("format_reward fell from 0.650 to -1.000 over the last 2 of 8 logs")


def test_reward_at_minimum_from_the_start_is_not_a_collapse():
    # An untrained model's accuracy while the format is learned: never learned, nothing collapsed.
    fmt = [-0.5, -0.25, 0.0, 0.25, 0.5, 0.5, 0.75, 0.75]
    assert health.assess(log(fmt, [-1.0] * 8), H, REWARDS) == ("ok", None)
    # A lucky correct answer early on is noise, not a peak to fall from.
    assert health.assess(log(fmt, [-0.875, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0]), H, REWARDS) == (
        "ok",
        None,
    )


def test_every_reward_at_minimum_throughout_is_flagged():
    # A model that never writes the format: all completions tie, zero gradient, nothing converges.
    assert health.assess(log([-1.0] * 12), H, REWARDS) == (
        "collapsed",
        "every reward stayed at its minimum (format_reward -1, accuracy_reward -1) in every log: no learning signal",
    )
    assert health.assess(log([-1.0] * 11 + [-0.75]), H, REWARDS) == ("ok", None)
    assert health.assess(log([-1.0] * 3), H, REWARDS) == ("ok", None)  # fewer than min_logs


def test_collapse_right_after_the_first_update():
    # The first log is the parent model's reward (generated before any update).
    status, reason = health.assess(log([0.25] + [-1.0] * 7), H, REWARDS)
    assert status == "collapsed" and "from 0.250 to -1.000" in reason


def test_accuracy_falling_far_below_its_peak():
    acc = [-0.6, -0.2, 0.0, 0.1, 0.0, -0.5, -0.7, -0.8]
    status, reason = health.assess(log([1.0] * 8, acc), H, REWARDS)
    assert status == "collapsed" and reason.startswith("accuracy_reward fell from 0.050 to -0.750")
    # A dip that keeps most of the gain is fine.
    assert (
        health.assess(log([1.0] * 8, [-0.6, -0.2, 0.0, 0.1, 0.0, -0.1, -0.2, -0.1]), H, REWARDS)[0] == "ok"
    )


def test_noisy_but_rising_run_is_ok():
    fmt = [
        -0.38,
        -0.38,
        0.25,
        -0.25,
        -0.25,
        0.75,
        0.38,
        0.12,
        -0.12,
        0.12,
        0.25,
        0.25,
        0.62,
        -0.5,
        0.12,
        0.38,
    ]
    assert health.assess(log(fmt), H, REWARDS) == ("ok", None)


def test_thresholds_come_from_config():
    acc = [-0.6, -0.2, 0.0, 0.1, 0.0, -0.1, -0.3, -0.4]  # tail -0.35, 0.4 below a best of 0.05
    assert health.assess(log([1.0] * 8, acc), H, REWARDS)[0] == "ok"
    assert health.assess(log([1.0] * 8, acc), {**H, "drop_fraction": 0.3}, REWARDS)[0] == "collapsed"
    assert health.assess(log([1.0] * 8, acc), {**H, "min_rise": 0.6}, REWARDS)[0] == "ok"
    pinned = [0.5, 0.5, -1.0, -1.0]
    assert health.assess(log(pinned), H, REWARDS)[0] == "collapsed"
    assert health.assess(log(pinned), {**H, "min_logs": 5}, REWARDS)[0] == "ok"
    # A longer tail averages in the good steps: no longer below half the best's height.
    assert health.assess(log([0.5] * 5 + [-1.0] * 3), {**H, "tail_fraction": 1.0}, REWARDS)[0] == "ok"
    assert health.assess(log([0.5] * 5 + [-1.0] * 3), {**H, "tail_fraction": 0.25}, REWARDS)[0] == "collapsed"


def test_reward_scale_comes_from_the_reward_config():
    scaled = {FMT: {"correct": 2.0, "incorrect": 0.0}}
    recs = [{"step": i + 1, FMT: v} for i, v in enumerate([1.6, 1.5, 1.4, 1.6, 0.0, 0.0, 0.0, 0.0])]
    assert health.assess(recs, H, scaled) == (
        "collapsed",
        "format_reward fell from 1.600 to 0.000 over the last 2 of 8 logs (minimum 0)",
    )
    assert health.assess(recs, H, None) == ("ok", None)  # SFT: no reward rules


def test_reward_series_names_the_metrics_trl_logs():
    series = health.reward_series(CONFIG["stages"]["rl"]["rewards"])
    names = [rewards.make_format_reward().__name__, rewards.make_accuracy_reward().__name__]
    assert series == {f"rewards/{n}/mean": {"correct": 1.0, "incorrect": -1.0} for n in names}
    assert health.reward_series(None) is None


def test_cli_judges_a_metrics_file(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in log([0.5, 0.6, 0.7, 0.4, -0.9, -1.0, -1.0, -1.0])))
    params = json.dumps({"health": H, "rewards": CONFIG["stages"]["rl"]["rewards"]})
    out = tmp_path / "health.json"
    health.main(["--metrics", str(metrics), "--params", params, "--out", str(out), "--model-name", "m", "--chain", "rl"])
    verdict = json.loads(out.read_text())
    assert (verdict["model"], verdict["chain"], verdict["status"]) == ("m", "rl", "collapsed")
    assert verdict["reason"].startswith("format_reward fell from")
    # The same run judged with a laxer threshold is fine: thresholds are the rule's params, not training's.
    health.main(["--metrics", str(metrics), "--params", params.replace('"min_rise": 0.25', '"min_rise": 1.0'),
                 "--out", str(out)])  # fmt: skip
    assert json.loads(out.read_text())["status"] == "ok"


def test_metrics_log_cut_by_a_kill_is_read_and_a_corrupt_line_is_named(tmp_path):
    from srlm.data.io import read_metrics

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(log)] == [1, 2]
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo\n{"step": 3, "loss": 0.8}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not JSON"):
        read_metrics(log)
    assert read_metrics(tmp_path / "absent.jsonl") == []
