"""The `xner` command: a thin typer shell over xner_core (every command also prints `--json`).

The commands are registered by importing their group modules; `main` runs the app and turns errors into exit
codes: user errors (`XnerError`) print `error: ...`, usage errors the usage and one `Error:` line; both exit 2.
"""

from __future__ import annotations

import sys

import typer

from xner_core.cli import data, grid, models, serve, sources  # noqa: F401  (registers the commands)
from xner_core.cli.common import LOG_LEVELS, app, configure_logging, emit
from xner_core.errors import XnerError

__all__ = ["LOG_LEVELS", "app", "configure_logging", "emit", "main"]


def _usage_error(exc: BaseException) -> bool:
    """Whether `exc` is a command-line usage error: typer's (which vendors click from 0.29 on) or click's."""
    if isinstance(exc, typer.TyperException) and hasattr(exc, "show"):
        return True
    try:
        import click
    except ImportError:
        return False
    return isinstance(exc, click.ClickException)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. User errors print `error: ...`, usage errors the usage and one `Error:` line; both exit 2."""
    try:
        configure_logging()
        app(args=argv, standalone_mode=False, prog_name="xner")
    except XnerError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except Exception as exc:
        if _usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            return int(getattr(exc, "exit_code", 2))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
