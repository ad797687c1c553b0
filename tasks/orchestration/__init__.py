"""The one Prefect-aware layer: each stage's plain function wrapped as a Prefect task, plus what
only an orchestrated run needs. Split by concern:

- `data_stages`, `model_stages`, `publish_stages`: the task wrappers, a few lines each, with their
  cache keys and retry rules beside them;
- `training_runs`: a training in a child process, its epochs reaching the UI as they end;
- `policies`: result storage for cached stages and retry conditions;
- `ui`: artifacts, events, run names and tags;
- `run_logging`: routing the plain modules' logs into run logs, one line per expected failure;
- `environment`: Prefect's settings for a local run.

The plain modules in `tasks/` never import this package; only `flows/` does.
"""
