"""The `xner` command line, shared parts: the typer apps, logging, output (`emit`) and the options every group uses.

Commands live in one module per group (`data`, `models`, `grid`, `serve`, `sources`); `main` registers them and runs
the app. Each command resolves its options, calls one or two core functions and prints the result. Errors a user can
cause (`XnerError`) are printed as one line `error: ...` with exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import typer

from xner_core.errors import XnerError
from xner_core.jsonable import jsonable

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cross-lingual NER robustness explorer.")
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _show_version(value: bool) -> None:
    if value:
        from xner_core import __version__

        typer.echo(f"xner {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Cross-lingual NER robustness explorer (logging: XNER_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR)."""


def configure_logging(level: str | None = None) -> None:
    """Send xner's log records to stderr at `level` (default: env XNER_LOG_LEVEL, else WARNING).

    Args:
        level: a logging level name.

    Returns:
        None; raises XnerError for an unknown level name.
    """
    import logging
    import os

    name = (level or os.environ.get("XNER_LOG_LEVEL") or "WARNING").strip().upper()
    if name not in LOG_LEVELS:
        raise XnerError(f"XNER_LOG_LEVEL={name!r} is not a log level; choose one of: {', '.join(LOG_LEVELS)}")
    logger = logging.getLogger("xner_core")
    logger.setLevel(name)
    if not any(getattr(h, "_xner", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._xner = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


data_app = typer.Typer(no_args_is_help=True, help="Inspect the WikiANN data.")
models_app = typer.Typer(no_args_is_help=True, help="The content-addressed model cache.")
grid_app = typer.Typer(no_args_is_help=True, help="Experiment grids: a preset or spec file -> resumable runs.")
results_app = typer.Typer(no_args_is_help=True, help="The results store (a DuckDB file): show, export, import, schema.")
sources_app = typer.Typer(no_args_is_help=True, help="Which source language for a target: measured and candidates.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(grid_app, name="grid")
app.add_typer(results_app, name="results")
app.add_typer(sources_app, name="sources")

DataDirOpt = typer.Option(None, "--data-dir", help="WikiANN directory (<dir>/<lang>/<split>.gz); env XNER_DATA_DIR")
ProtocolOpt = typer.Option("wikiann-rahimi", "--data", help="wikiann-rahimi (balanced splits) or paper-resplit")
JsonOpt = typer.Option(False, "--json", help="print machine-readable JSON")
CacheOpt = typer.Option(None, "--cache-dir", help="xner cache root (env XNER_CACHE_DIR)")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
PrecisionOpt = typer.Option("auto", "--precision", help="auto, bf16 or fp32 autocast for training and inference "
                                                        "(auto: bf16 on CUDA and on CPUs with native bf16)")



def emit(payload: Any, as_json: bool, render: Callable[[Any], str] | None = None) -> None:
    """Print `payload` as JSON or through `render` (a plain-text renderer)."""
    if as_json:
        typer.echo(json.dumps(jsonable(payload), ensure_ascii=False, indent=2))
    else:
        typer.echo(render(payload) if render else json.dumps(jsonable(payload), ensure_ascii=False, indent=2))


def _language(code: str, role: str) -> str:
    """Check a language argument against the language table (`unknown language 'x'; choose one of: ...`).

    Done before any data is loaded, so a typo fails at once with the allowed codes instead of after a Hugging
    Face hub probe; train/eval/predict check the same table through `make_config`.
    """
    from xner_core.corpus.languages import get_language
    from xner_core.errors import ConfigError

    try:
        return get_language(code).code
    except ConfigError as exc:
        raise ConfigError(f"{role}: {exc}") from None


def _kv_table(d: dict[str, Any]) -> str:
    width = max((len(k) for k in d), default=0)
    lines = []
    for k, v in d.items():
        if isinstance(v, float):
            v = f"{v:.4f}"
        lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines)



def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()



def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # A pipe or a test runner has no width: give tables room instead of rich's 80 columns.
    return Console(file=stream, width=None if stream.isatty() else 160, soft_wrap=False)

