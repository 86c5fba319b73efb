"""Tools for the repository itself: ``render_docs`` renders the docs' measured tables from
``benchmarks/results`` (``python -m tools.render_docs [--check]``)."""
