"""Speed, memory and scale benchmarks of pyg_mpnn against the original: scripts run from the
repository root as ``python -m benchmarks.NAME``, sharing :mod:`benchmarks.common`; results in
``benchmarks/results``. ``benchmarks/README.md`` lists them."""
