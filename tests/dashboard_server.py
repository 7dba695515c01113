"""Start the dashboard (`streamlit run app.py`, or another command that serves it, e.g. `xner app`) on a free port with
its own cache, for browser, load and CLI checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A running dashboard: its base URL, process, cache directory and log file."""

    url: str
    proc: subprocess.Popen
    cache: Path
    log: Path

    def rss_mb(self) -> float:
        """Resident memory of the server process (MB), from /proc."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")


def healthy(url: str) -> bool:
    """Whether a dashboard answers its health check at `url` (e.g. "http://127.0.0.1:8501")."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def streamlit_command(port: int) -> list[str]:
    """`streamlit run app.py`, headless, on 127.0.0.1:`port`."""
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
            "--server.headless", "true", "--server.address", "127.0.0.1"]


def start_server(data_dir: Path, cache: Path, embed_model: str = "tiny", command=streamlit_command,
                 timeout: float = 60.0):
    """Start a dashboard on a free port with its own cache; a generator yielding a Server, stopped after.

    Args:
        data_dir, cache, embed_model: the server's XNER_DATA_DIR, XNER_CACHE_DIR (results store inside) and
            XNER_EMBED_MODEL.
        command: port -> argv that serves app.py on 127.0.0.1:port (default `streamlit_command`).
        timeout: seconds to wait for the health check.
    """
    port = _free_port()
    env = {**os.environ, "XNER_DATA_DIR": str(data_dir), "XNER_CACHE_DIR": str(cache),
           "XNER_RESULTS": str(cache / "results.duckdb"), "XNER_EMBED_MODEL": embed_model,
           "TOKENIZERS_PARALLELISM": "false"}
    cache.mkdir(parents=True, exist_ok=True)
    log_path = cache / "streamlit.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while not healthy(url):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the dashboard did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield Server(url, proc, cache, log_path)
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
