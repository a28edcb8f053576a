#!/usr/bin/env bash
# Create a virtual environment and install a pinned requirements file into it with uv.
#   envs/install.sh VENV REQUIREMENTS [EXCLUDES]
# EXCLUDES: packages left out of the resolution (uv --excludes), e.g. envs/excludes-vllm.txt.
# Why uv: pip needs ~2 min for envs/requirements-cpu.txt on a 2-core box, uv ~35 s (parallel downloads and
# unpacking), which is what keeps `make demo` under 10 minutes from a fresh clone. Same pins, same versions.
# uv does not read pip's configuration, so the site's pip settings (find-links, extra indexes, constraints:
# where a CPU torch wheel comes from, for instance) are handed to it explicitly.
set -euo pipefail
venv=$1
req=$2
excl=${3:-}
UV_PIN=uv==0.13.9

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$UV_PIN"

args=()
pipcfg() { "$venv/bin/pip" config get "global.$1" 2>/dev/null || true; }
for v in ${PIP_FIND_LINKS:-$(pipcfg find-links)}; do args+=(--find-links "$v"); done
for v in ${PIP_EXTRA_INDEX_URL:-$(pipcfg extra-index-url)}; do args+=(--extra-index-url "$v"); done
for v in ${PIP_CONSTRAINT:-$(pipcfg constraint)}; do args+=(--constraint "$v"); done
index=${PIP_INDEX_URL:-$(pipcfg index-url)}
[ -n "$index" ] && args+=(--index-url "$index")
[ -n "$excl" ] && args+=(--excludes "$excl")

# unsafe-best-match: pick the best version across all indexes, as pip does (uv's default stops at the first
# index that has the package). --compile-bytecode: import times of every job depend on it when
# PYTHONDONTWRITEBYTECODE is set.
"$venv/bin/uv" pip install --python "$venv/bin/python" --quiet --compile-bytecode \
  --index-strategy unsafe-best-match "${args[@]}" -r "$req"
"$venv/bin/uv" pip install --python "$venv/bin/python" --quiet --no-deps --no-build-isolation -e .
