"""One-off studies: each answers one question (experiments/README.md gives the question, the command and the
answer). Run each from the repository root as ``python -m experiments.NAME``; they share the benchmarks'
helpers and end-to-end scorer through ``benchmarks.common`` only."""
