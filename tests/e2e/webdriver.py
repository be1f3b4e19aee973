"""A small W3C WebDriver client for the browser tests: Debian's chromedriver
started on loopback with a free port and a temp profile, driving headless
Debian chromium; stopped by its PID."""

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
ENTER = "\ue007"


def missing():
    """Why the browser tests cannot run here; empty when they can."""
    for tool in ("chromium", "chromedriver"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian packages chromium, chromium-driver)"
    return ""


class WebDriverError(RuntimeError):
    pass


class Browser:
    def __init__(self, workdir, port, width=1400, height=1000):
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(workdir, "chromedriver.log"), "ab")
        # Without --allowed-ips chromedriver listens on loopback only
        # (127.0.0.1 and ::1; with it, on every address).
        self.proc = subprocess.Popen(["chromedriver", f"--port={port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                if self._raw("GET", "/status")["value"]["ready"]:
                    break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise WebDriverError("chromedriver did not start")
            time.sleep(0.1)
        session = self._raw("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": True,  # the node's certificate is from the test's own CA
            "goog:chromeOptions": {
                "binary": shutil.which("chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--user-data-dir=" + os.path.join(workdir, "profile"),
                         f"--window-size={width},{height}"]}}}})
        self.session = session["value"]["sessionId"]

    def _raw(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise WebDriverError(e.read().decode()[:500]) from None

    def _cmd(self, method, path, body=None):
        return self._raw(method, f"/session/{self.session}{path}", body)["value"]

    def go(self, url):
        self._cmd("POST", "/url", {"url": url})

    def run(self, script, *args):
        """Runs a function body in the page; its return value."""
        return self._cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        return self._cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css):
        return [e[ELEMENT] for e in self._cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def click(self, element):
        self._cmd("POST", f"/element/{element}/click", {})

    def type(self, element, text):
        self._cmd("POST", f"/element/{element}/value", {"text": text})

    def text(self, element):
        return self._cmd("GET", f"/element/{element}/text")

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self._cmd("GET", "/screenshot")))

    def wait_for(self, script, timeout=10.0, poll=0.02, *args):
        """Polls `script` until it returns something true; that value."""
        deadline = time.time() + timeout
        while True:
            value = self.run(script, *args)
            if value:
                return value
            if time.time() > deadline:
                raise WebDriverError(f"timed out waiting for: {script[:120]}")
            time.sleep(poll)

    def quit(self):
        try:
            self._raw("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.log.close()
