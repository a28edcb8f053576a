"""Model folders' checksum manifests (srlm.checksums): what a job writes last and verifies before reading."""

from __future__ import annotations

import subprocess
import sys

import pytest

from srlm import checksums
from srlm.data.io import DataError
from srlm.layout import Layout


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "models" / "m" / "base" / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 1024)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "tokenizer.json").write_text('{"v": 1}')
    checksums.write(folder)
    (folder / ".snakemake_timestamp").write_text("")  # Snakemake's, written after the job: not checked
    return folder


def test_intact_folder_verifies(model):
    checksums.verify(model)
    assert checksums.damaged_models(Layout(str(model.parents[3]))) == []


def damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zeroed":  # same size: only the hash sees it
        path.write_bytes(data[:1000] + bytes(65536) + data[1000 + 65536 :])
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "zeroed", "deleted"])
def test_damage_names_the_file(model, how):
    damage(model / "model.safetensors", how)
    with pytest.raises(DataError) as e:
        checksums.verify(model)
    assert str(e.value).startswith(f"{model / 'model.safetensors'}: ") and f"remove {model}" in str(e.value)
    # the cheap check before planning sees what changes sizes; the full one also what keeps them
    assert bool(checksums.damaged_models(Layout(str(model.parents[3])))) == (how != "zeroed")


def test_added_file_and_missing_manifest(model):
    (model / "adapter_config.json").write_text("{}")
    with pytest.raises(DataError, match="adapter_config.json: added"):
        checksums.verify(model)
    (model / checksums.MANIFEST).unlink()
    with pytest.raises(DataError, match=f"{checksums.MANIFEST}: missing"):
        checksums.verify(model)


def test_cli_one_line_error(model):
    (model / "config.json").write_text("[]")  # same size
    proc = subprocess.run([sys.executable, "-m", "srlm.checksums", "verify", str(model)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {model / 'config.json'}: content changed")
    assert "Traceback" not in proc.stderr
