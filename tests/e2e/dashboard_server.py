"""Start the dashboard (`streamlit run app.py`) on a free port with its own cache, for browser and load checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


def start_server(data_dir: Path, cache: Path, embed_model: str = "tiny"):
    """Start `streamlit run app.py` on a free port with its own cache; a generator yielding a Server."""
    port = _free_port()
    env = {**os.environ, "XNER_DATA_DIR": str(data_dir), "XNER_CACHE_DIR": str(cache),
           "XNER_RESULTS": str(cache / "results.duckdb"), "XNER_EMBED_MODEL": embed_model,
           "TOKENIZERS_PARALLELISM": "false"}
    cache.mkdir(parents=True, exist_ok=True)
    log_path = cache / "streamlit.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield Server(url, proc, cache, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
