"""The renderers of ``benchmarks/render_docs.py``, one module per topic (``core``: the registry
and shared helpers)."""
