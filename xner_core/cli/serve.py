"""`xner app`: serve the dashboard."""

from __future__ import annotations

from typing import Optional

import typer

from xner_core.cli.common import app
from xner_core.errors import XnerError


@app.command("app")
def app_cmd(
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="HTTP port"),
    address: Optional[str] = typer.Option(None, "--address", help="address to bind (default: all interfaces)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the streamlit command instead of running it"),
) -> None:
    """Serve the dashboard (Streamlit) on http://localhost:PORT; needs the `app` extra (pip install 'xner[app]')."""
    import importlib.util
    import os
    import subprocess

    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("xner_ui") is None:
        raise XnerError("the dashboard needs Streamlit and xner_ui; install the app extra: pip install 'xner[app]'")
    from xner_ui.launch import streamlit_command

    cmd = streamlit_command(port=port, address=address)
    if dry_run:
        typer.echo(" ".join(cmd))
        return
    if os.name == "posix":
        # Become Streamlit: a signal sent to `xner app` (a supervisor, `docker stop`, a CI trap) then reaches the
        # server itself; a child process would keep serving after its parent was killed.
        os.execv(cmd[0], cmd)
    try:
        code = subprocess.call(cmd)
    except KeyboardInterrupt:
        code = 130
    if code:
        raise typer.Exit(code)

