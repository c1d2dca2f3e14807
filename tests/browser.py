"""Shared by the browser tests: Debian's headless Chromium under Selenium, and a Jupyter server
(JupyterLab, or nbgrader's Formgrader) on a loopback port with a token.

Chromium and chromedriver come from Debian (``make test`` installs them when run as root);
nothing is downloaded. Without them a test skips, and under ``CI=true`` it fails.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900"]
TOKEN = "course-test-token"


def browser():
    """Chromium's options and chromedriver's service (skips, or fails under CI, without them)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "chromium / chromium-driver missing: `make test` installs them (as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options, Service(executable_path=str(CHROMEDRIVER))


@contextlib.contextmanager
def chromium(profile: Path):
    """A Selenium driver of a headless Chromium with its profile in ``profile`` (removed after)."""
    from selenium import webdriver

    options, service = browser()
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(argv: list[str], cwd: Path, env: dict, log: Path, timeout: float = 120):
    """Run ``argv + [--port P, --IdentityProvider.token TOKEN, ...]`` (``jupyter lab`` or
    ``jupyter server``) in ``cwd``; yield its base URL once ``/api/status`` answers."""
    port = free_port()
    argv = [*argv, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={TOKEN}", "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited ({server.returncode}):\n{log.read_text()}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no answer in {timeout} s:\n{log.read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def jupyter_env(root: Path, path: str) -> dict:
    """An environment for a test's Jupyter server: its own config, data and runtime folders
    (nothing read from or written to the user's ~/.jupyter), and ``path`` as PATH."""
    env = {**os.environ, "PATH": path, "OMP_NUM_THREADS": "1"}
    for name in ("config", "data", "runtime"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env.update(JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_DATA_DIR=str(root / "data"),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(root / "config" / "lab" / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "config" / "lab" / "workspaces"))
    return env
