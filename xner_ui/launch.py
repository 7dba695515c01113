"""How `xner app` starts the dashboard: the `streamlit run` command line (no Streamlit import here).

The entry script is `xner_ui/app.py` of the installed package and the settings are `xner_ui/streamlit.toml`,
passed as `--section.key=value` options, so an installed package serves the same dashboard as a checkout's
`streamlit run app.py` (which reads the same file through `.streamlit/config.toml`).
"""

from __future__ import annotations

import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any


def entry_script() -> Path:
    """The dashboard's main script (`xner_ui/app.py`)."""
    return Path(str(resources.files("xner_ui").joinpath("app.py")))


def settings_file() -> Path:
    """The dashboard's Streamlit settings file (`xner_ui/streamlit.toml`)."""
    return Path(str(resources.files("xner_ui").joinpath("streamlit.toml")))


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def settings_flags(path: Path | None = None) -> list[str]:
    """The settings file as `streamlit run` options, e.g. `--server.maxUploadSize=5`.

    Args:
        path: a Streamlit TOML settings file (default: `settings_file()`).

    Returns:
        One `--section.key=value` option per setting, in file order.
    """
    with (path or settings_file()).open("rb") as fh:
        data = tomllib.load(fh)
    return [f"--{section}.{key}={_flag_value(value)}"
            for section, table in data.items() for key, value in table.items()]


def streamlit_command(port: int = 8501, address: str | None = None, extra: list[str] | None = None) -> list[str]:
    """The command line that serves the dashboard.

    Args:
        port: the HTTP port.
        address: the address to bind (Streamlit's default, all interfaces, when None).
        extra: more `streamlit run` options, appended last (they win over the settings file).

    Returns:
        `[python, -m, streamlit, run, <app.py>, --section.key=value..., --server.port=N, ...]`.
    """
    cmd = [sys.executable, "-m", "streamlit", "run", str(entry_script()), *settings_flags(), f"--server.port={port}"]
    if address:
        cmd.append(f"--server.address={address}")
    return cmd + list(extra or [])
