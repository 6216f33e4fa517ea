"""A tiny Chrome DevTools Protocol client for the browser tests, over `--remote-debugging-pipe`.

Place in the project: test tooling only (it proves the presentation step, the HTML report, in a
real browser). Pure stdlib: the browser reads commands on its fd 3 and writes answers and events
on its fd 4, each message JSON terminated by a NUL byte; no websocket, no selenium/playwright.

The browser runs headless with networking disabled three ways (a dead proxy, a resolver that
resolves nothing, and CDP's offline emulation), so a report that tries to fetch anything fails to
load it, and `Page.requests` still records the attempt (Network.requestWillBeSent fires before
the request is refused). Every wait has a timeout, and `Browser.close` kills the browser's whole
process group, then any straggler that still holds our fresh profile directory.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INSTALL_HINT = "run `./install-deps.sh --tests` (it installs Debian's `chromium`)"

FLAGS = (
    "--headless", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-sync", "--disable-component-update",
    "--disable-default-apps", "--mute-audio", "--remote-debugging-pipe",
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
    "--hide-scrollbars",  # the screenshot shows the page, not a scrollbar
    # No network: every proxied request goes to a closed port (loopback included), every name
    # resolves to nothing; Browser.open adds CDP's offline emulation on top.
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND",
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STDERR = "chromium.stderr"  # in the profile directory, read for failure messages


class CdpError(AssertionError):
    """The browser failed to start, answered with an error, died, or did not answer in time (an
    AssertionError, so that a browser test FAILS with this message: never errors out, never skips)."""


def find_chromium() -> str:
    """The Chromium executable, or a CdpError saying how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    raise CdpError(f"Chromium is not installed: the browser tests need it; {INSTALL_HINT}")


class Browser:
    """One headless Chromium with a fresh profile, driven over the DevTools pipe."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int, profile: Path) -> None:
        self.proc = proc
        self._to = to_browser
        self._from = from_browser
        self.profile = profile
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._next_id = 0
        self._answers: dict[int, dict] = {}
        self._listeners: list[Callable[[dict], None]] = []
        self._dead: str | None = None
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, *, executable: str | None = None, width: int = 1280, height: int = 900,
              timeout: float = 30.0) -> Browser:
        """Start Chromium and wait until it answers `Browser.getVersion`."""
        exe = executable or find_chromium()
        profile = Path(tempfile.mkdtemp(prefix="xivo-doctor-chromium-"))
        cmd_read, cmd_write = os.pipe()  # we write commands, the browser reads them on its fd 3
        out_read, out_write = os.pipe()  # the browser writes on its fd 4, we read
        # The child must see them as exactly fds 3 and 4: move them above 9, then let a trampoline
        # place them and exec the browser (a preexec_fn dup2 could clobber whatever the parent
        # happened to hold at 3 or 4, and dash cannot name fds above 9).
        child_in = fcntl.fcntl(cmd_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(out_write, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (cmd_read, out_write):
            os.close(fd)
        argv = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
        trampoline = (f"import os, sys; os.dup2({child_in}, 3); os.dup2({child_out}, 4); "
                      f"os.close({child_in}); os.close({child_out}); os.execv(sys.argv[1], sys.argv[1:])")
        try:
            with open(profile / STDERR, "wb") as stderr:
                proc = subprocess.Popen([sys.executable, "-c", trampoline, *argv], stdin=subprocess.DEVNULL,
                                        stdout=stderr, stderr=stderr, pass_fds=(child_in, child_out),
                                        start_new_session=True)  # its own process group, killed whole
        except OSError as exc:
            for fd in (child_in, child_out, cmd_write, out_read):
                os.close(fd)
            shutil.rmtree(profile, ignore_errors=True)
            raise CdpError(f"cannot start {exe}: {exc}; {INSTALL_HINT}") from None
        os.close(child_in)
        os.close(child_out)
        browser = cls(proc, cmd_write, out_read, profile)
        try:
            browser.send("Browser.getVersion", timeout=timeout)
        except BaseException:
            browser.close()
            raise
        return browser

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask the browser to quit, then kill its process group and any straggler of our profile."""
        if self.proc.poll() is None and self._dead is None:
            with contextlib.suppress(CdpError):
                self.send("Browser.close", timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the renderer, GPU and zygote processes too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pid in self.stragglers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for fd in (self._to, self._from):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._reader.join(timeout=5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def stragglers(self) -> list[int]:
        """Pids of processes still running with our profile directory on their command line."""
        marker = f"--user-data-dir={self.profile}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):  # a process may end while we look
                if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
        return found

    def stderr_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.profile / STDERR).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _read(self) -> None:
        """The reader thread: answers go to `send`, events to the pages' listeners."""
        buffer, reason = b"", "the browser closed its DevTools pipe (it exited or crashed)"
        try:
            while chunk := os.read(self._from, 1 << 16):
                *messages, buffer = (buffer + chunk).split(b"\0")
                for message in map(json.loads, messages):
                    self._dispatch(message)
        except Exception as exc:  # a bug here must fail the waiting test, not hang it
            reason = f"cannot handle the DevTools pipe: {exc!r}"
        with self._lock:
            self._dead = reason
            self._changed.notify_all()

    def _dispatch(self, message: dict) -> None:
        if "id" in message:
            with self._lock:
                self._answers[message["id"]] = message
                self._changed.notify_all()
        else:
            for listener in list(self._listeners):
                listener(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 15.0) -> dict:
        """Send one command and wait for its answer's `result`; CdpError on error or timeout."""
        with self._lock:
            if self._dead:
                raise CdpError(f"{method}: {self._dead}\n{self.stderr_tail()}")
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to, data):]
        except OSError as exc:
            raise CdpError(f"{method}: cannot write to the browser: {exc}\n{self.stderr_tail()}") from None
        self.wait_for(lambda: ident in self._answers, timeout, f"{method}: the browser's answer")
        with self._lock:
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error'].get('message')} ({answer['error'].get('data', '')})")
        return answer.get("result", {})

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `predicate()` (evaluated under the lock, after each event) holds."""
        end = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = end - time.monotonic()
                if self._dead:
                    raise CdpError(f"{what}: {self._dead}\n{self.stderr_tail()}")
                if left <= 0:
                    raise CdpError(f"{what}: not within {timeout:g} s\n{self.stderr_tail()}")
                self._changed.wait(left)

    def notify(self) -> None:
        """Wake the waiters: an event changed what their predicates read."""
        with self._lock:
            self._changed.notify_all()

    def open(self, url: str, *, timeout: float = 30.0) -> Page:
        """A new tab, offline, with the network/console/exception recorders on, loaded with `url`."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, target, session)
        self._listeners.append(page.on_event)
        for domain in ("Page", "Network", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        page.send("Page.setLifecycleEventsEnabled", {"enabled": True})
        page.send("Network.emulateNetworkConditions",
                  {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        page.navigate(url, timeout=timeout)
        return page


class Page:
    """One tab. `requests`, `console`, `exceptions` and `log` record what happened in it."""

    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self.browser = browser
        self.target = target
        self.session = session
        self.requests: list[str] = []  # every URL the page tried to load, the document included
        self.failed: list[tuple[str, str]] = []  # (url, errorText or blockedReason)
        self.console: list[tuple[str, str]] = []  # (type, text) of console.* calls
        self.exceptions: list[str] = []  # uncaught JavaScript exceptions
        self.log: list[tuple[str, str]] = []  # browser-side log entries (CSP violations, ...)
        self._ids: dict[str, str] = {}
        self._lifecycle: set[tuple[str, str]] = set()  # (loaderId, event name)

    def send(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 15.0) -> dict:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def on_event(self, message: dict) -> None:
        if message.get("sessionId") != self.session:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self._ids[params["requestId"]] = params["request"]["url"]
            self.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            reason = params.get("blockedReason") or params.get("errorText", "")
            self.failed.append((self._ids.get(params["requestId"], "?"), reason))
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append((params.get("type", ""), text))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            self.exceptions.append(exception.get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.log.append((entry.get("level", ""), entry.get("text", "")))
        elif method == "Page.lifecycleEvent":
            self._lifecycle.add((params.get("loaderId", ""), params.get("name", "")))
        self.browser.notify()

    def navigate(self, url: str, *, timeout: float = 30.0) -> None:
        """Load `url` and wait for its load event, then for two animation frames (layout done)."""
        answer = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if answer.get("errorText"):
            raise CdpError(f"cannot load {url}: {answer['errorText']}")
        # The load event of this navigation (its loaderId), not a late one of the blank tab.
        loaded = (answer.get("loaderId", ""), "load")
        self.browser.wait_for(lambda: loaded in self._lifecycle, timeout, f"the load event of {url}")
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))",
                      timeout=timeout)

    def evaluate(self, expression: str, *, timeout: float = 15.0) -> Any:
        """The JSON value of a JavaScript expression (promises awaited); CdpError if it throws."""
        answer = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"evaluating {expression[:80]!r}: {text}")
        return answer["result"].get("value")

    def screenshot_full(self, path: Path, *, timeout: float = 30.0) -> tuple[int, int]:
        """A PNG of the whole page (not just the viewport) written to `path`; returns its CSS size."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        width, height = int(size["width"]), int(size["height"])
        shot = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        }, timeout=timeout)
        data = base64.b64decode(shot["data"])
        if not data.startswith(PNG_MAGIC):
            raise CdpError("Page.captureScreenshot did not return a PNG")
        path.write_bytes(data)
        return width, height
