"""Reporting: what a person reads of a run.

- `report`: variant results, the summary and seed tables, report.md and the model card;
- `plots`: learning curves and data set plots as PNG files.
"""
