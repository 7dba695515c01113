"""JSON-ready values (configuration-level helper, not a pipeline stage): one converter for the CLI's `--json`
output and the model manifests' training records."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Mapping


def jsonable(obj: Any) -> Any:
    """Convert dataclasses, mappings, sequences, paths and numpy scalars into JSON-friendly values.

    Dataclasses become dicts, mappings get string keys, lists/tuples/sets become lists, paths become strings,
    numpy scalars (anything with `.item()`) become Python numbers; any other object becomes its `str`.

    Args:
        obj: the value.

    Returns:
        A value `json.dumps` accepts.
    """
    if is_dataclass(obj) and not isinstance(obj, type):
        return {str(k): jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return str(obj)
