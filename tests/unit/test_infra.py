"""The deployments against the code they run: the weekly retraining's parameters (infra/prefect.yaml)
are a valid config that skips unchanged weeks; the Kubernetes manifests of infra/k8s/ (they cannot be
applied here): the deployment's parameters are a valid config that trains on the DaskCluster's
scheduler and publishes to S3, and the workers run the flow's image single-threaded with the code
importable."""

from __future__ import annotations

import yaml

from tasks.config import PipelineConfig
from tasks.runtime.task_runners import DASK_ADDRESS_VARIABLE, dask_address
from tests.helpers import REPO_ROOT

K8S = REPO_ROOT / "infra" / "k8s"
DEPLOYMENTS = REPO_ROOT / "infra" / "prefect.yaml"


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
    assert environment["PYTHONPATH"] == "/app" and environment["PREFECT_API_URL"].endswith("/api")
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
