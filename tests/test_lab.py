"""`make lab` starts JupyterLab where `make test` runs (as root too), prints the address, and serves its page."""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_lab_starts_serves_its_page_and_stops():
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out, url = [], None
    try:
        deadline = time.time() + 120
        while time.time() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                if proc.poll() is not None:
                    break
                continue
            out.append(line)
            m = re.search(rf"(http://127\.0\.0\.1:{port}/lab\?token=\w+)", line)
            if m:
                url = m.group(1)
        assert url, "make lab printed no address:\n" + "".join(out[-40:])
        assert any(f"http://127.0.0.1:{port}/lab" in line for line in out[:3]), "make lab does not say what to open first"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
        for _ in range(20):  # the address is printed as the server starts listening
            try:
                opener.open(url, timeout=30).close()
                break
            except OSError:
                time.sleep(0.5)
        with opener.open(url, timeout=30) as resp:
            assert resp.status == 200
            assert "JupyterLab" in resp.read().decode("utf-8", "replace")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode is not None
