"""A small headless-Chromium driver over the DevTools protocol, for the report viewer's browser test.

Stdlib only. Chromium is started with `--remote-debugging-pipe`: it reads CDP messages (JSON, each
terminated by a NUL byte) from its file descriptor 3 and writes responses and events to its fd 4. A
reader thread splits fd 4 into messages: responses wake the caller waiting on their id; events are
kept (console errors, uncaught exceptions, error log entries and every requested URL are collected so
that a test can assert on them). Every wait has a deadline, so a hung browser fails a test instead of
hanging it; the browser is killed on exit.

    with Browser() as browser:
        browser.new_page("file:///tmp/page.html", 1200, 800)
        browser.wait_for("document.readyState === 'complete'")
        browser.click("#button")
        assert browser.evaluate("document.title") == "clicked" and not browser.errors
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# key -> (code, windowsVirtualKeyCode); printable keys also send their text
KEYS = {"ArrowLeft": ("ArrowLeft", 37), "ArrowUp": ("ArrowUp", 38), "ArrowRight": ("ArrowRight", 39),
        "ArrowDown": ("ArrowDown", 40), "Escape": ("Escape", 27), "Enter": ("Enter", 13), "Tab": ("Tab", 9),
        "+": ("Equal", 187), "=": ("Equal", 187), "-": ("Minus", 189), "[": ("BracketLeft", 219),
        "]": ("BracketRight", 221), " ": ("Space", 32)}


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


class BrowserError(RuntimeError):
    """A CDP error, a JavaScript exception, a timeout, or a browser that went away."""


class _Process:
    """A spawned child process: `poll`, `wait` with a timeout, `kill` (what `close` needs of Popen)."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise BrowserError(f"process {self.pid} still running after {timeout} s")
            time.sleep(0.02)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


class Browser:
    """One headless Chromium with (at most) one page; use as a context manager."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 800, timeout: float = 20.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("no Chromium found on PATH (" + ", ".join(CANDIDATES) + ")")
        self.timeout, self.width, self.height = timeout, width, height
        self.errors: list[str] = []      # console.error calls, uncaught exceptions, error log entries
        self.requests: list[str] = []    # every URL the page requested
        self.session: str | None = None
        self._responses: dict[int, dict] = {}
        self._events: list[dict] = []
        self._next_id = 0
        self._cond = threading.Condition()
        self._closed = False
        self._profile: str | None = None

    # -- process and transport ---------------------------------------------------------------------
    def __enter__(self) -> "Browser":
        self._profile = tempfile.mkdtemp(prefix="cfanet-chromium-")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        to_child, self._write = os.pipe()      # we write -> Chromium reads on its fd 3
        self._read, from_child = os.pipe()     # Chromium writes on its fd 4 -> we read
        # copies above 10 so that dup2 onto 3 and 4 in the child cannot clobber one another
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child, from_child)]
        os.close(to_child), os.close(from_child)
        args = [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--mute-audio",
                f"--user-data-dir={self._profile}", "--remote-debugging-pipe",
                f"--window-size={self.width},{self.height}", "about:blank"]
        # posix_spawn, not subprocess: no Python fork hooks run in the child (matplotlib's closes the
        # font files it cached, which may sit on fds 3 and 4, and broke pass_fds); dup2 onto 3 and 4
        # clears their close-on-exec flag.
        devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
        pid = os.posix_spawn(self.executable, args, os.environ,
                             file_actions=[*devnull, (os.POSIX_SPAWN_DUP2, high[0], 3),
                                           (os.POSIX_SPAWN_DUP2, high[1], 4)])
        self.process = _Process(pid)
        for fd in high:
            os.close(fd)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.send("Browser.getVersion")  # fails fast if the pipe does not work

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "process", None) and self.process.poll() is None:
            try:
                self.send("Browser.close", timeout=3)
                self.process.wait(timeout=3)
            except Exception:
                pass
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)
        for fd in ("_write", "_read"):
            if hasattr(self, fd):
                try:
                    os.close(getattr(self, fd))
                except OSError:
                    pass
                delattr(self, fd)
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)

    def _read_loop(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._read, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            *messages, buffer = (buffer + chunk).split(b"\0")
            for raw in messages:
                self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict) -> None:
        with self._cond:
            if "id" in message:
                self._responses[message["id"]] = message
            else:
                self._events.append(message)
                self._collect(message.get("method"), message.get("params", {}))
            self._cond.notify_all()

    def _collect(self, method: str, params: dict) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append("console.error: " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))

    def send(self, method: str, params: dict | None = None, *, session: bool = False,
             timeout: float | None = None) -> dict:
        """Send one command (to the attached page's session if `session`) and return its result."""
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._write, data):]
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while ident not in self._responses:
                left = deadline - time.monotonic()
                if self._closed:
                    raise BrowserError(f"browser went away during {method}")
                if left <= 0:
                    raise BrowserError(f"timeout waiting for {method}")
                self._cond.wait(left)
            response = self._responses.pop(ident)
        if "error" in response:
            raise BrowserError(f"{method}: {response['error']}")
        return response.get("result", {})

    def wait_event(self, method: str, timeout: float | None = None, after: int = 0) -> dict:
        """The first event `method` of the page's session received at index >= `after`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                for event in self._events[after:]:
                    if event.get("method") == method and event.get("sessionId") == self.session:
                        return event.get("params", {})
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise BrowserError(f"no {method} event within the timeout")
                self._cond.wait(left)

    # -- page ----------------------------------------------------------------------------------------
    def new_page(self, url: str, width: int | None = None, height: int | None = None) -> None:
        """Open a tab, attach to it (flat sessions), enable the domains, size it and load `url`."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)
        self.set_viewport(width or self.width, height or self.height)
        self.navigate(url)

    def navigate(self, url: str, timeout: float | None = None) -> None:
        """Load `url` and wait for its load event (a hash-only change waits for nothing)."""
        with self._cond:
            mark = len(self._events)
        result = self.send("Page.navigate", {"url": url}, session=True)
        if result.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {result['errorText']}")
        if result.get("loaderId"):
            self.wait_event("Page.loadEventFired", timeout, after=mark)

    def evaluate(self, expression: str, timeout: float | None = None):
        """The value of a JavaScript expression (promises awaited); raises on a JavaScript exception."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True, "userGesture": True},
                           session=True, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error in {expression[:200]!r}: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 10.0, interval: float = 0.05):
        """Poll until `expression` is truthy; returns its value, raises BrowserError at the deadline. Errors
        while polling (a page still navigating, an object not defined yet) count as "not yet"."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression, timeout=max(0.5, deadline - time.monotonic()))
                last = f"last value {value!r}"
                if value:
                    return value
            except BrowserError as error:
                last = f"last error {error}"
            time.sleep(interval)
        raise BrowserError(f"timeout ({timeout} s) waiting for {expression!r} ({last})")

    # -- input ---------------------------------------------------------------------------------------
    def center(self, selector: str) -> tuple[float, float]:
        """The centre of the first element matching `selector`, in viewport coordinates (scrolled into view)."""
        box = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'nearest', inline: 'nearest'}});
            const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2, r.width, r.height]; }})()""")
        if not box:
            raise BrowserError(f"no element matches {selector!r}")
        if box[2] <= 0 or box[3] <= 0:
            raise BrowserError(f"{selector!r} is not visible (size {box[2]}x{box[3]})")
        return box[0], box[1]

    def mouse(self, kind: str, x: float, y: float, **extra) -> None:
        self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, **extra}, session=True)

    def click(self, selector: str) -> None:
        """Move to, press and release the left button at the centre of `selector`."""
        x, y = self.center(selector)
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y, button="left", buttons=1, clickCount=1)
        self.mouse("mouseReleased", x, y, button="left", buttons=0, clickCount=1)

    def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 8) -> None:
        """Press at (x0, y0), move in `steps` to (x1, y1) with the button held, release."""
        self.mouse("mouseMoved", x0, y0)
        self.mouse("mousePressed", x0, y0, button="left", buttons=1, clickCount=1)
        for i in range(1, steps + 1):
            self.mouse("mouseMoved", x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps, button="left", buttons=1)
        self.mouse("mouseReleased", x1, y1, button="left", buttons=0, clickCount=1)

    def wheel(self, x: float, y: float, delta_y: float) -> None:
        self.mouse("mouseMoved", x, y)
        self.mouse("mouseWheel", x, y, deltaX=0, deltaY=delta_y)

    def key(self, key: str) -> None:
        """Press and release one key (a printable character, or a name such as "ArrowLeft")."""
        if key in KEYS:
            code, vk = KEYS[key]
        elif len(key) == 1 and key.isalnum():
            code, vk = ("Digit" + key if key.isdigit() else "Key" + key.upper()), ord(key.upper())
        else:
            raise BrowserError(f"unknown key {key!r}")
        params = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}
        text = {"text": key, "unmodifiedText": key} if len(key) == 1 else {}
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **params, **text}, session=True)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **params}, session=True)

    # -- viewport and pixels ---------------------------------------------------------------------------
    def set_viewport(self, width: int, height: int, mobile: bool = False) -> None:
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": mobile}, session=True)

    def screenshot(self, path: str | Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path


def main(argv: list[str] | None = None) -> int:
    """`python tests/browser.py PAGE OUT.png`: a screenshot of a page once it is ready (the README's
    viewer screenshot is made this way)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("page", help="a file path or URL, e.g. 'results/demo/report/viewer.html#mode=ab'")
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--size", default="1400x900", help="window WIDTHxHEIGHT (default 1400x900)")
    parser.add_argument("--ready", default="document.body && document.body.dataset.viewerReady === '1'",
                        help="JavaScript expression that is true once the page is ready")
    parser.add_argument("--eval", action="append", default=[], help="JavaScript to run before the screenshot")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    page, _, fragment = args.page.partition("#")
    url = page if "://" in page else Path(page).resolve().as_uri()
    with Browser(width=width, height=height) as browser:
        browser.new_page(url + (f"#{fragment}" if fragment else ""), width, height)
        browser.wait_for(args.ready, timeout=30)
        for script in args.eval:
            browser.evaluate(script)
        browser.wait_for(args.ready, timeout=30)
        time.sleep(0.5)
        print(browser.screenshot(args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
