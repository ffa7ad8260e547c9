"""Shared test setup. Core fixtures come from core_fixtures.py; this file holds the app's browser fixtures:
`streamlit run app.py` in a subprocess and system chromium driven by Playwright.

Browser tests (marked `browser`) are skipped locally when chromium is missing and never skipped
when CI is set: there a missing browser fails the run. Screenshots go to artifacts/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["core_fixtures"]  # the core tests' fixtures (fake encoder, corpus copies) live there

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS") or ROOT / "artifacts")
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # chromium's own phone-home traffic is refused offline and stalls
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
]


def pytest_collection_modifyitems(config, items):
    """Skip browser tests locally when chromium is missing; in CI let them fail instead."""
    if IN_CI or Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"chromium not found at {CHROMIUM} (set CI=1 to make this a failure)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so `page` can screenshot a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore http(s)_proxy for loopback
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@contextlib.contextmanager
def streamlit_server(log: Path, env: dict[str, str]) -> Iterator[str]:
    """A headless `streamlit run app.py` on a free loopback port with `env` added to this process's
    environment, its output in `log`; yields its URL once healthy and stops it (and its children) after."""
    port = _free_port()
    env = {
        **os.environ,
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",  # else the page fetches metrics config: console errors offline
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
        "STREAMLIT_SERVER_RUN_ON_SAVE": "false",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with open(log, "w") as fh:
        # Own process group, so teardown kills streamlit and anything it started.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="session")
def streamlit_url(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The browser tests' server; uploads and their indexes go to a temp folder."""
    cache = tmp_path_factory.mktemp("app-cache")
    with streamlit_server(artifacts_dir / "streamlit.log", {"INDEXER_CACHE_DIR": str(cache)}) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright  # the wheel ships its node driver; no `playwright install`

    with sync_playwright() as playwright:
        # launch() already gives a fresh temporary profile; --user-data-dir in args is rejected.
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser, request, artifacts_dir: Path):
    """A fresh 1280x900 page; console errors collected in `page.console_errors`; a screenshot if the test fails."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # Streamlit reruns are asynchronous and CI boxes are slow
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.console_errors = errors
    try:
        yield page
    finally:
        try:
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                page.screenshot(path=str(artifacts_dir / f"FAILED-{request.node.name}.png"), full_page=True)
                if errors:
                    print("browser console errors:", *errors, sep="\n  ")
        finally:
            context.close()
