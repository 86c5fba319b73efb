"""The renderers of ``tools/render_docs.py``, one module per topic (``core``: the registry
and shared helpers)."""
