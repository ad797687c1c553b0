"""The deployments against the code they run. infra/prefect.yaml as written: the weekly retraining's
parameters are a valid config that skips unchanged weeks; the watch deployment, the source set in
one place, the retraining's trigger on new data (tests/e2e/test_data_watch.py applies it to a real
server). The Kubernetes manifests of infra/k8s/ (they cannot be applied here): the deployment's
parameters are a valid config that trains on the DaskCluster's scheduler and publishes to S3, and
the workers run the flow's image single-threaded with the code importable."""

from __future__ import annotations

import os

import pytest
import yaml

from tasks.config import PipelineConfig
from tasks.runtime.environment import HEARTBEAT_SECONDS
from tasks.runtime.task_runners import DASK_ADDRESS_VARIABLE, dask_address
from tests.helpers import REPO_ROOT

K8S = REPO_ROOT / "infra" / "k8s"
DEPLOYMENTS = REPO_ROOT / "infra" / "prefect.yaml"
HEARTBEAT_VARIABLE = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


def test_the_weekly_retraining_skips_a_week_when_nothing_changed():
    project = yaml.safe_load(DEPLOYMENTS.read_text())
    weekly = next(deployment for deployment in project["deployments"] if deployment["name"] == "weekly-retraining")
    config = PipelineConfig.model_validate(weekly["parameters"]["config"])
    assert config.skip_unchanged is True
    assert weekly["schedules"] and weekly["entrypoint"] == "flows/imdb_pipeline.py:imdb_rnn_pipeline"


def test_the_dask_cluster_runs_single_threaded_workers_of_the_projects_image():
    cluster = yaml.safe_load((K8S / "dask-cluster.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    scheduler = cluster["spec"]["scheduler"]["spec"]["containers"][0]
    args = worker["args"]
    assert args[:2] == ["dask", "worker"] and args[args.index("--nthreads") + 1] == "1"
    environment = {item["name"]: item["value"] for item in worker["env"]}
    assert environment["PYTHONPATH"] == "/app" and "PREFECT_API_URL" not in environment  # workers run no Prefect
    assert worker["envFrom"][0]["secretRef"]["name"]  # the storage's credentials
    assert worker["image"] == scheduler["image"]
    dockerfile = (K8S / "Dockerfile").read_text()
    assert "ENV PYTHONPATH=/app" in dockerfile and "-r requirements.lock" in dockerfile
    assert scheduler["args"][:2] == ["dask", "scheduler"]


def test_the_kubernetes_deployment_trains_on_that_cluster_and_publishes_to_s3(monkeypatch):
    cluster = yaml.safe_load((K8S / "dask-cluster.yaml").read_text())
    project = yaml.safe_load((K8S / "prefect.yaml").read_text())
    (deployment,) = project["deployments"]
    assert deployment["entrypoint"] == "flows/imdb_pipeline.py:imdb_rnn_pipeline"
    assert (REPO_ROOT / deployment["entrypoint"].split(":")[0]).is_file()
    config = PipelineConfig.model_validate(deployment["parameters"]["config"])
    assert config.storage.root.startswith("s3://")  # the only storage workers and the flow run share
    assert config.sweep == {"rnn_units": (8, 16)} and config.training.seeds == 2
    pool = deployment["work_pool"]
    worker_image = cluster["spec"]["worker"]["spec"]["containers"][0]["image"]
    assert pool["job_variables"]["image"] == worker_image  # the flow run and the workers run the same code
    service = cluster["spec"]["scheduler"]["service"]
    port = next(entry["port"] for entry in service["ports"] if entry["name"] == "tcp-comm")
    monkeypatch.setenv(DASK_ADDRESS_VARIABLE, pool["job_variables"]["env"][DASK_ADDRESS_VARIABLE])
    # The operator names the scheduler's service <cluster>-scheduler.
    assert dask_address(config.dask_address) == f"tcp://{cluster['metadata']['name']}-scheduler:{port}"


PROJECT = REPO_ROOT / "infra" / "prefect.yaml"
SOURCE_TEMPLATE = "{{ $IMDB_PIPELINE_SOURCE }}"


def _deployments() -> dict[str, dict]:
    return {deployment["name"]: deployment for deployment in yaml.safe_load(PROJECT.read_text())["deployments"]}


def test_the_watch_deployment_looks_at_the_retrainings_prefix_every_quarter_hour_on_the_same_pool():
    from tasks.config import WatchConfig

    deployments = _deployments()
    watch, retraining = deployments["watch-reviews"], deployments["weekly-retraining"]
    path, function = watch["entrypoint"].split(":")
    assert f"def {function}(config: WatchConfig)" in (REPO_ROOT / path).read_text()
    assert watch["schedules"] == [{"interval": 900, "active": True}]
    assert watch["work_pool"] == retraining["work_pool"]
    # One variable sets where the data lives for both: what the watcher announces is what retraining reads.
    assert watch["parameters"]["config"]["source"] == retraining["parameters"]["config"]["data"]["source"]
    assert watch["parameters"]["config"]["source"] == SOURCE_TEMPLATE
    assert watch["parameters"]["config"]["storage"] == retraining["parameters"]["config"]["storage"]
    WatchConfig.model_validate({**watch["parameters"]["config"], "source": "s3://bucket/reviews/"})


def test_the_retraining_keeps_its_weekly_schedule_and_is_triggered_once_per_burst_of_new_data():
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    from tasks.runtime.ui import DATA_ARRIVED_EVENT, DATA_RESOURCE_PREFIX

    deployments = _deployments()
    retraining = deployments["weekly-retraining"]
    assert retraining["schedules"][0]["cron"] == "0 3 * * 1"
    (written,) = retraining["triggers"]
    trigger = DeploymentEventTrigger.model_validate(written)
    assert trigger.expect == {DATA_ARRIVED_EVENT} and trigger.posture == "Reactive" and trigger.threshold == 1
    assert written["match"] == {"prefect.resource.id": f"{DATA_RESOURCE_PREFIX}{SOURCE_TEMPLATE}"}
    # Events within `within` of the one that fired are ignored: it must outlast the watcher's next
    # looks (every `interval`), which announce the same snapshots until a run has published.
    watch_interval = deployments["watch-reviews"]["schedules"][0]["interval"]
    assert trigger.within.total_seconds() >= 4 * watch_interval
    assert 0 < trigger.schedule_after.total_seconds() < trigger.within.total_seconds()


def test_make_deploy_sets_the_source_of_both_deployments_from_one_variable_auto_by_default():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "\nexport SOURCE ?= auto\n" in makefile
    assert 'IMDB_PIPELINE_SOURCE="$$SOURCE" $(PREFECT) --no-prompt deploy --all' in makefile
    assert PROJECT.read_text().count(SOURCE_TEMPLATE) == 3  # retraining, watcher, trigger


@pytest.mark.parametrize("source", ["auto", "s3://bucket/reviews/", "2026", "true", "null"])
def test_the_templated_source_stays_the_string_given(source, monkeypatch):
    """What `prefect deploy` does to a deployment first (prefect/cli/deploy/_core.py): the
    environment's values in place of `{{ $VAR }}`, always as text, never parsed as YAML."""
    from prefect.utilities.templating import apply_values

    monkeypatch.setenv("IMDB_PIPELINE_SOURCE", source)
    monkeypatch.setenv("IMDB_PIPELINE_ROOT", "/repo")
    deployments = {
        name: apply_values(deployment, dict(os.environ), remove_notset=False)
        for name, deployment in _deployments().items()
    }
    assert deployments["weekly-retraining"]["parameters"]["config"]["data"]["source"] == source
    assert deployments["watch-reviews"]["parameters"]["config"]["source"] == source
    match = deployments["weekly-retraining"]["triggers"][0]["match"]["prefect.resource.id"]
    assert match == f"imdb-rnn-pipeline.data.{source}"


def test_the_rescoring_deployment_reads_reviews_the_repo_ships():
    from tasks.config import ScoringConfig
    from tasks.scoring import batch

    config = ScoringConfig.model_validate(_deployments()["rescore-on-promotion"]["parameters"]["config"])
    path = REPO_ROOT / config.input  # the worker runs flows from the checkout's root
    reviews = batch.check_input(batch.read_table(str(path)), str(path), config.text_column, config.id_column)
    assert len(reviews.texts) >= 10 and set(reviews.labels) == {0, 1}


def test_every_place_that_starts_flow_runs_sets_the_heartbeat_the_crash_automation_expects():
    """Prefect's default heartbeat is off: a deployment run started anywhere but `make` would be
    crashed as silent, or never covered."""
    expected = str(HEARTBEAT_SECONDS)
    compose = yaml.safe_load((REPO_ROOT / "infra" / "compose.yaml").read_text())
    assert compose["services"]["worker"]["environment"][HEARTBEAT_VARIABLE] == expected
    for project_file in (DEPLOYMENTS, K8S / "prefect.yaml"):
        for deployment in yaml.safe_load(project_file.read_text())["deployments"]:
            assert deployment["work_pool"]["job_variables"]["env"][HEARTBEAT_VARIABLE] == expected, project_file
