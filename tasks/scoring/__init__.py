"""Scoring raw review text with a published model.

- `scorer`: loading a published model and its vocabulary (verified against the run's manifest) and scoring text;
- `batch`: batch scoring of a CSV, Parquet or JSONL file into published Parquet predictions;
- `stages`: the Prefect tasks of the batch-scoring flow.
"""
