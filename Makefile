# `make run`: install (once) and run the main job; `make test`: install (once) and run the tests;
# `make docs`: render the docs' measured tables from benchmarks/results (tools/render_docs.py)
# and write the CLI and config reference, docs/reference/ (tools/cli_reference.py).
PY := .venv/bin/python

.PHONY: install run test docs
install: .venv/.installed

.venv/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $@

run: install
	$(PY) -m pyg_mpnn.train --exp scale_sweep

test: install
	$(PY) -m pytest -q -x --durations=15

docs: install
	$(PY) -m tools.render_docs
	$(PY) -m tools.cli_reference
