"""The CLI's shell behaviour for every command: usage errors (one `Error:` line after the usage, exit 2, never a
traceback), `--version`, `XNER_LOG_LEVEL`, and `xner app`'s command line. No data or models needed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer

from xner_core import __version__
from xner_core.cli.main import app, configure_logging, main

ROOT = Path(__file__).resolve().parents[1]


def _commands(group, prefix=()):
    """Every leaf command of the typer app, as its argv prefix, with the click command object."""
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_app_has_the_commands_the_readme_names():
    names = {" ".join(p) for p, _ in COMMANDS}
    for want in ("train", "eval", "predict", "perturb", "overlap", "app", "grid run", "grid status",
                 "results export", "models ls", "data stats"):
        assert want in names


def _usage_failure(capsys, argv) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, err
    assert "Usage: xner" in err, err
    return errors[0]


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_unknown_option_is_a_usage_error_for_every_command(capsys, path):
    line = _usage_failure(capsys, [*path, "--no-such-option"])
    assert "--no-such-option" in line


@pytest.mark.parametrize(
    "path", [p for p, c in COMMANDS if any(getattr(prm, "required", False) for prm in c.params)],
    ids=[" ".join(p) for p, c in COMMANDS if any(getattr(prm, "required", False) for prm in c.params)])
def test_missing_required_parameter_is_a_usage_error(capsys, path):
    line = _usage_failure(capsys, list(path))
    assert "Missing" in line


def test_the_cases_that_printed_tracebacks(capsys):
    assert "--out" in _usage_failure(capsys, ["results", "export", "--format", "csv"])
    assert "--target" in _usage_failure(capsys, ["train"])
    assert "--target" in _usage_failure(capsys, ["predict", "x", "--target", "an"])
    assert "--limit" in _usage_failure(capsys, ["results", "show", "--limit", "x"])


def test_unknown_command_is_a_usage_error(capsys):
    assert "nosuch" in _usage_failure(capsys, ["nosuch"])


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"xner {__version__}"


def test_installed_entry_point_prints_one_line_for_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "xner_core.cli", "train"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.count("Error:") == 1


def test_log_level_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("XNER_LOG_LEVEL", "info")
    configure_logging()
    assert logging.getLogger("xner_core").level == logging.INFO
    configure_logging("DEBUG")
    assert logging.getLogger("xner_core").level == logging.DEBUG
    handlers = [h for h in logging.getLogger("xner_core").handlers if getattr(h, "_xner", False)]
    assert len(handlers) == 1  # configuring twice adds no second handler
    monkeypatch.setenv("XNER_LOG_LEVEL", "loud")
    assert main(["--version"]) == 2
    assert "XNER_LOG_LEVEL" in capsys.readouterr().err
    configure_logging("WARNING")


def test_app_command_line_carries_the_dashboard_settings(capsys):
    from xner_ui.launch import entry_script, settings_file, settings_flags, streamlit_command

    assert main(["app", "--dry-run", "--port", "8600", "--address", "127.0.0.1"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[1:4] == ["-m", "streamlit", "run"] and Path(printed[4]) == entry_script()
    assert "--server.port=8600" in printed and "--server.address=127.0.0.1" in printed
    settings = tomllib.loads(settings_file().read_text())
    assert "--server.maxUploadSize=5" in printed and settings["server"]["maxUploadSize"] == 5
    assert "--runner.postScriptGC=false" in settings_flags()
    assert streamlit_command(extra=["--x=1"])[-1] == "--x=1"
    # the checkout's `streamlit run app.py` reads the same settings
    assert (ROOT / ".streamlit" / "config.toml").resolve() == settings_file().resolve()


def test_app_port_is_validated(capsys):
    assert "--port" in _usage_failure(capsys, ["app", "--port", "0"])


@pytest.mark.skipif(os.name != "posix", reason="xner app execs Streamlit on POSIX only")
def test_stopping_xner_app_stops_the_server(tmp_path):
    """A signal to `xner app` (a supervisor, `docker stop`, CI's trap) stops the server, leaving nothing serving."""
    import signal
    import time

    from dashboard_server import healthy, start_server

    def xner_app(port: int) -> list[str]:
        return [sys.executable, "-m", "xner_core.cli", "app", "--port", str(port), "--address", "127.0.0.1"]

    server = start_server(Path(os.environ.get("XNER_DATA_DIR", tmp_path)), tmp_path / "cache", command=xner_app,
                          timeout=120)
    srv = next(server)
    try:
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(30)  # xner app execs Streamlit: the signal reaches the server itself
        deadline = time.time() + 15
        while healthy(srv.url) and time.time() < deadline:
            time.sleep(0.5)
        assert not healthy(srv.url), "the dashboard still answers after xner app was stopped"
    finally:
        server.close()
