from srlm.cleanup import remove_checkpoints
from srlm.layout import Layout


def _run(results, name, finished):
    run = results / "models" / "m" / name
    (run / "work" / "checkpoint-2").mkdir(parents=True)
    (run / "work" / "checkpoint-2" / "optimizer.pt").write_bytes(b"x" * 100)
    if finished:
        (run / "model").mkdir()
        (run / "train_summary.json").write_text("{}")
    return run


def test_only_finished_runs_lose_their_checkpoints(tmp_path):
    done = _run(tmp_path, "sft", finished=True)
    running = _run(tmp_path, "sft+rl", finished=False)  # no final model yet: a restart must resume
    layout = Layout(str(tmp_path))
    assert remove_checkpoints(layout) == [done / "work"]
    assert not (done / "work").exists() and (done / "model").is_dir()
    assert (running / "work" / "checkpoint-2" / "optimizer.pt").is_file()
    assert remove_checkpoints(layout) == []
