"""The Prefect UI as a person sees it: a real headless Chromium, driven by Playwright, against a
real Prefect server that `make server` started on a non-default port, after a small pipeline run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import httpx
import pytest

from tests.helpers import REPO_ROOT, server_client, small_run_options

pytestmark = pytest.mark.e2e

CHROMIUM = "chromium"  # Debian's package and binary name
# Flags for a headless browser in a container with no GPU, no sandbox and no network of its own.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APT_SECONDS = 900  # installing chromium and its libraries on a fresh machine
PAGE_TIMEOUT_MS = 60_000  # the UI's first page load on a busy 2-core machine
LONG_FLOAT = re.compile(r"\d\.\d{5,}")  # more decimals than the summary table prints


def chromium_path() -> str:
    """Debian's chromium, installed with apt-get when missing (as root); a clear failure otherwise."""
    found = shutil.which(CHROMIUM)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"the browser test needs {CHROMIUM}: install it (apt-get install -y {CHROMIUM}) and run again")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", CHROMIUM]):
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=APT_SECONDS)
        assert done.returncode == 0, f"{' '.join(command)} failed: {done.stderr[-2000:]}"
    return shutil.which(CHROMIUM) or pytest.fail(f"apt-get installed {CHROMIUM}, but it is not on PATH")


def test_a_run_shows_its_task_runs_plots_and_rounded_metrics_in_a_browser(prefect_server, imdb_npz, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    port, environment = prefect_server
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/ui-settings", timeout=10).json()["api_url"] == f"{base}/api"
    browser_path = chromium_path()

    options = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "2")
    run = subprocess.run(
        [sys.executable, "-m", "flows.imdb_pipeline", *options],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    # The link the run prints for a person to follow.
    flow_run_url = re.search(rf"View at ({re.escape(base)}/runs/flow-run/[0-9a-f-]+)", run.stdout + run.stderr)[1]
    flow_run_id = flow_run_url.rsplit("/", 1)[-1]
    with server_client(environment) as client:
        artifacts = {
            artifact.key: artifact for artifact in client.read_artifacts() if str(artifact.flow_run_id) == flow_run_id
        }
        task_runs = [task_run.name for task_run in client.read_task_runs() if str(task_run.flow_run_id) == flow_run_id]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            page.goto(flow_run_url)
            page.get_by_text("Task Runs", exact=True).first.click()
            for name in ("train-embedding-seed-", "evaluate-embedding-seed-", "publish", "describe-run"):
                expect(
                    page.get_by_text(next(task for task in task_runs if task.startswith(name))).first
                ).to_be_visible()

            page.goto(f"{base}/artifacts/artifact/{artifacts['imdb-run-report'].id}")
            images = page.locator("img[src^='data:image/png']")
            expect(images).to_have_count(5)  # two data plots, the comparison, the variant's loss and accuracy
            page.wait_for_function("[...document.images].every(image => image.complete)")
            widths = images.evaluate_all("images => images.map(image => image.naturalWidth)")
            assert all(width > 0 for width in widths), widths

            page.goto(f"{base}/artifacts/artifact/{artifacts['imdb-variant-metrics'].id}")
            table = page.locator("table").first
            expect(table).to_contain_text("test_accuracy")
            record = artifacts["imdb-variant-metrics"].data
            accuracy = re.search(r'"test_accuracy": ([0-9.]+)', record)[1]
            expect(table).to_contain_text(format(float(accuracy), "g"))  # as the browser writes it: 1.0 is "1"
            assert not LONG_FLOAT.search(table.inner_text()), table.inner_text()
        except Exception:
            page.screenshot(path=tmp_path / "browser-failure.png", full_page=True)
            print(f"screenshot of the failing page: {tmp_path / 'browser-failure.png'} ({page.url})")
            raise
        finally:
            browser.close()
