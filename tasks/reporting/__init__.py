"""Reporting: what a person reads of a run.

- `results`: each variant's result, the guard's label, table records and the run's metrics.json;
- `tables`: the summary, seed, sweep and data tables, as text or markdown, and the run's time split;
- `report`: report.md, from the facts of one run;
- `model_card`: model_card.md, from the same facts;
- `summary`: what a run returns to its caller (and its command line prints);
- `plots`: learning curves and data set plots as PNG files.
"""
