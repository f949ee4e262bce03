"""A JupyterLab server and a headless Chromium page for the browser tests.

`LabServer` runs `jupyter lab` from this Python on a free localhost port with a fresh
token, its own settings and workspace folders (so nothing from ~/.jupyter leaks in and no
news prompt covers the page), and stops it with its kernels. `LabPage` drives one page:
it waits for things to appear, saves a screenshot per stage, and when something does not
appear in time it fails with the browser console log and the last screenshot.

Debian's Chromium is used (`/usr/bin/chromium`, or WORKBENCH_CHROMIUM): Playwright's own
browser download does not work on a closed network. `scripts/ensure-chromium` installs it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
# Flags that work on a closed network: no GPU, no sandbox (root in containers), and no
# background traffic (without these Chromium keeps retrying Google services).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
INSTALL_HINT = ("run scripts/ensure-chromium (it installs Debian's chromium with apt-get), "
                "or set WORKBENCH_CHROMIUM to a Chromium or Chrome executable")
# JupyterLab settings for a clean page: no "fetch news?" toast, no update check.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LabServer:
    """`jupyter lab` serving `root`; use as a context manager."""

    def __init__(self, root: Path, work_dir: Path, log_path: Path, env: dict | None = None):
        """`work_dir` holds its settings, workspaces, config and runtime files."""
        self.root, self.work_dir, self.log_path = Path(root), Path(work_dir), Path(log_path)
        self.port, self.token = free_port(), secrets.token_hex(24)
        self.env = dict(os.environ if env is None else env)
        self.env.update(JUPYTER_CONFIG_DIR=str(self.work_dir / "config"),
                        JUPYTER_RUNTIME_DIR=str(self.work_dir / "runtime"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, relative: str) -> str:
        return f"{self.url}/lab/tree/{relative}?token={self.token}"

    def __enter__(self) -> LabServer:
        settings = self.work_dir / "lab-user-settings"
        for name, values in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values), encoding="utf-8")
        command = [sys.executable, "-m", "jupyterlab", "--no-browser",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                   "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.root}",
                   f"--LabApp.user_settings_dir={settings}",
                   f"--LabApp.workspaces_dir={self.work_dir / 'lab-workspaces'}",
                   "--LabApp.news_url=None", "--LabApp.extension_manager=readonly"]
        if os.geteuid() == 0:  # containers and CI often run as root
            command.append("--allow-root")
        self.log = open(self.log_path, "w", encoding="utf-8")
        # Its own process group, so that its kernels can be ended with it if it hangs.
        self.process = subprocess.Popen(command, cwd=self.root, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout=90)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}",
                                            timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f}s:\n"
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(self, *exc) -> None:
        """Shut down through the API (which ends the kernels too), then by signal."""
        try:
            request = urllib.request.Request(f"{self.url}/api/shutdown", method="POST",
                                             headers={"Authorization": f"token {self.token}"})
            urllib.request.urlopen(request, timeout=10).close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                    self.process.wait(timeout=15)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        self.log.close()


class StageTimeout(AssertionError):
    pass


class LabPage:
    """One Playwright page with a console log, numbered stage screenshots and waits."""

    def __init__(self, page, artifacts: Path):
        self.page, self.artifacts = page, Path(artifacts)
        self.console: list[str] = []
        self.shots: list[Path] = []
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)
        return path

    def wait_until(self, what, check, timeout: float, every: float = 0.25):
        """Poll `check()` until it returns something truthy; return that. `what` names
        the awaited thing; a callable is asked at the timeout (to show what it saw)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"{what() if callable(what) else what}: not seen within "
                          f"{timeout:.0f}s")
            self.page.wait_for_timeout(every * 1000)

    def fail(self, message: str):
        try:
            shot = self.screenshot("timeout")
        except Exception as exc:  # the page itself may be gone
            shot = f"(no screenshot: {exc})"
        console = "\n".join(self.console[-80:]) or "(empty)"
        raise StageTimeout(f"{message}\nlast screenshot: {shot}\n"
                           f"browser console (last 80 lines):\n{console}")

    def text(self, locator) -> str:
        """Inner text of the first match, '' when there is none yet."""
        try:
            return locator.first.inner_text(timeout=1000) if locator.count() else ""
        except Exception:  # detached while re-rendering: look again next poll
            return ""


def number(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else None
