import io
import re

from srlm.train import progress
from transformers import TrainerControl, TrainerState


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _run(steps, start=0, every_s=0.0, dt=2.0, total=10):
    out, clock = io.StringIO(), Clock()
    cb = progress.Progress(every_s=every_s, out=out, clock=clock)
    state = TrainerState(global_step=start, max_steps=total)
    cb.on_train_begin(None, state, TrainerControl())
    for step in steps:
        clock.t += dt
        state.global_step = step
        cb.on_log(None, state, TrainerControl(), logs={"loss": 0.5, "learning_rate": 1e-5})
    return out.getvalue().splitlines()


def test_progress_line_has_step_total_elapsed_eta_and_loss():
    lines = _run([1, 2, 3, 4])
    assert lines[0] == "step 1/10 (10%) | elapsed 0:00:02 | ETA 0:00:18 | loss 0.5"
    # 4 steps in 8 s: 6 left take 12 s
    assert lines[3] == "step 4/10 (40%) | elapsed 0:00:08 | ETA 0:00:12 | loss 0.5"


def test_resumed_run_estimates_from_its_own_steps():
    # resumed at step 5: one step in 2 s, so the 4 left take 8 s (not 4 s as 6 steps in 2 s would say)
    assert _run([6], start=5)[0] == "step 6/10 (60%) | elapsed 0:00:02 | ETA 0:00:08 | loss 0.5"


def test_lines_are_throttled_but_first_and_last_are_printed():
    lines = _run(range(1, 11), every_s=5.0, dt=2.0)
    steps = [int(re.match(r"step (\d+)/", x).group(1)) for x in lines]
    assert steps == [1, 4, 7, 10]


def test_other_processes_print_nothing():
    out = io.StringIO()
    cb = progress.Progress(every_s=0, out=out)
    state = TrainerState(global_step=0, max_steps=3)
    cb.on_train_begin(None, state, TrainerControl())
    state.is_world_process_zero = False
    state.global_step = 1
    cb.on_log(None, state, TrainerControl(), logs={"loss": 1.0})
    assert out.getvalue() == ""


def test_header_names_versions_host_devices_and_slurm_job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    text = progress.header(processes=2)
    assert re.search(r"transformers=\d+\.\d+", text) and re.search(r"torch=\d+\.\d+", text)
    assert "host=" in text and "processes=2" in text and "SLURM_JOB_ID=4242" in text
    assert ("CPU (" in text) or ("× " in text)
