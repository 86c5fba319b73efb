"""The studies behind the findings (docs/findings.md, docs/monitoring.md, docs/finetuning.md):
scripts that train or evaluate to answer a question, run from the repository root as
``python -m studies.NAME``; their results go to ``benchmarks/results`` beside the benchmarks'.
``studies/README.md`` lists them."""
