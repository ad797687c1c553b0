"""Runtime: the Prefect plumbing of a run, and the processes around it.

- `environment`: Prefect's settings for a local run; `local_server`: the run's temporary Prefect server;
- `command_line`: what every flow's command line does around its flow (one-line errors, interruptions);
- `interruption`: SIGTERM and SIGINT; `parent_death`: children that end with their parent;
- `heartbeats`: the automation that marks silent flow runs Crashed;
- `run_logging`: the plain modules' logs into the run's log; `policies`: result storage and retry rules;
- `task_runners`: where trainings run (this machine or a Dask cluster); `ui`: artifacts, events, run names and tags.
"""
