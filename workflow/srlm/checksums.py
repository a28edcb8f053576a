"""Checksum manifests of model folders: every job that writes a model writes one last, every job that reads a
model verifies it first (docs/security.md).

The manifest (MANIFEST inside the folder) maps each file's path to its size and sha256. `write` runs after the
producing command has finished, so a manifest only exists beside complete weights; `verify` re-hashes every file
(about a second a GB) and names the first one that is missing, added, resized or changed. `sizes` is the cheap
version the Snakefile runs over every finished model before planning (a stat per file): a truncated checkpoint
stops the run there instead of being treated as up to date.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
from pathlib import Path

from srlm.data.io import DataError, cli, write_json
from srlm.layout import Layout

MANIFEST = "CHECKSUMS.json"
# Written into directory outputs by Snakemake after the job, so never part of what the job wrote.
IGNORED = {MANIFEST, ".snakemake_timestamp"}


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name not in IGNORED
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write(folder: str | Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no model folder to checksum")
    files = {rel: {"bytes": (folder / rel).stat().st_size, "sha256": _sha256(folder / rel)} for rel in _files(folder)}
    if not files:
        raise DataError(f"{folder}: the model folder is empty")
    manifest = {"algorithm": "sha256", "files": files}
    write_json(folder / MANIFEST, manifest)
    return manifest


def _manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{path}: missing: the model folder was not finished by this workflow's job (or predates "
            f"checksums); remove {folder} to rebuild it"
        )
    try:
        return json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable manifest ({e}); remove {folder} to rebuild it") from None


def _damaged(folder: Path, rel: str, what: str) -> DataError:
    return DataError(f"{folder / rel}: {what} since its job wrote it (damaged model): remove {folder} to rebuild it")


def sizes(folder: str | Path) -> dict:
    """The cheap check: every file of the manifest is there with its size, and no file was added; the manifest's
    files."""
    folder = Path(folder)
    files = _manifest(folder)
    for rel, entry in files.items():
        try:
            size = (folder / rel).stat().st_size
        except OSError:
            raise _damaged(folder, rel, "missing") from None
        if size != entry["bytes"]:
            raise _damaged(folder, rel, f"{size} bytes, {entry['bytes']} when written")
    extra = sorted(set(_files(folder)) - set(files))
    if extra:
        raise _damaged(folder, extra[0], "added")
    return files


def verify(folder: str | Path) -> None:
    """The full check a job runs before reading a model: sizes, then every file's sha256."""
    folder = Path(folder)
    for rel, entry in sizes(folder).items():
        if _sha256(folder / rel) != entry["sha256"]:
            raise _damaged(folder, rel, "content changed (sha256 differs)")


def damaged_models(layout: Layout) -> list[str]:
    """The `sizes` problem of every finished model folder of the layout (those with a manifest; a folder
    without one is an unfinished job's, which Snakemake already reruns)."""
    problems = []
    for manifest in sorted(Path(p) for p in glob.glob(f"{layout.model_dir('*', '*')}/{MANIFEST}")):
        try:
            sizes(manifest.parent)
        except DataError as e:
            problems.append(str(e))
    return problems


@cli
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["write", "verify"])
    ap.add_argument("folders", nargs="+")
    a = ap.parse_args(argv)
    for folder in a.folders:
        if a.action == "write":
            write(folder)
        else:
            verify(folder)
        print(f"{a.action}: {folder}", flush=True)


if __name__ == "__main__":
    main()
