"""Tools for the repository itself: ``render_docs`` renders the docs' measured tables from
``benchmarks/results`` (``python -m tools.render_docs [--check]``); ``cli_reference`` writes
``docs/reference/`` from the commands' parsers and ``experiments/base.yaml``
(``python -m tools.cli_reference [--check]``)."""
