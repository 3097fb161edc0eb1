"""A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: messages are JSON, NUL-terminated, on fds 3 and 4), so the tests need
no websocket library. It collects console messages and uncaught exceptions as they happen."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time


class Browser:
    def __init__(self, width=1100, height=1400):
        exe = shutil.which("chromium")
        assert exe, "chromium is not installed (scripts/install-deps.sh installs it)"
        self.profile = tempfile.mkdtemp(prefix="equivd-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # The child gets the pipe ends as its fds 3 (commands in) and 4 (replies out).
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(to_chrome_r, 3), os.dup2(from_chrome_w, 4)))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next, self._replies, self._lock = 0, {}, threading.Condition()
        self.console, self.exceptions = [], []
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _read(self):
        buffer = b""
        while True:
            data = os.read(self._from_chrome, 1 << 16)
            if not data:
                return
            buffer += data
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._lock:
                    if "id" in message:
                        self._replies[message["id"]] = message
                        self._lock.notify_all()
                    elif message.get("method") == "Runtime.consoleAPICalled":
                        self.console.append((message["params"]["type"], [a.get("value", a.get("description")) for a in message["params"]["args"]]))
                    elif message.get("method") == "Log.entryAdded":
                        entry = message["params"]["entry"]
                        self.console.append((entry["level"], [entry.get("text"), entry.get("url")]))
                    elif message.get("method") == "Runtime.exceptionThrown":
                        self.exceptions.append(message["params"]["exceptionDetails"])

    def call(self, method, session=False, timeout=30, **params):
        with self._lock:
            self._next += 1
            n = self._next
        message = {"id": n, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        with self._lock:
            assert self._lock.wait_for(lambda: n in self._replies, timeout), f"chromium did not answer {method}"
            reply = self._replies.pop(n)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply["result"]

    def open(self, url, settle=1.0):
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + 30
        while self.evaluate("document.readyState") != "complete":
            assert time.monotonic() < deadline, f"{url} did not finish loading"
            time.sleep(0.1)
        time.sleep(settle)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, f"{expression}: {result['exceptionDetails']}"
        return result["result"].get("value")

    def screenshot(self, path, full_page=True):
        import base64
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def errors(self):
        """Console errors, failed loads and uncaught exceptions so far."""
        return [c for c in self.console if c[0] in ("error", "assert")] + self.exceptions

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
