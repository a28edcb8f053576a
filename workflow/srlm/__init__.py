"""srlm-repro: all logic of the workflow. Rules call `python -m srlm.<module>`; nothing here imports snakemake."""
