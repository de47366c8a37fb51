"""The tool on top of the library: the `equissl` command line and what only it needs.

cli (the entry point), config (the typed configuration and its presets), keyhelp, runner
(pretrain and evaluate a run), runs (the run folder, its labels and the one checkpoint reader),
train (the Lightning glue), suite (the evaluation suite a run reports), sweep, bench, export
(`equissl export`), signals and outputs. Nothing in the library (`equissl.augment`, `models`,
`methods`, `eval`, ... and `equissl.encoder`) imports this package.
"""
