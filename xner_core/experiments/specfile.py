"""Stage 6, experiments: reading grid spec files, the part that is about files rather than grids.

Error messages name the file, the line (where it can be found) and the key path of anything invalid (`_Where`);
the TOML and YAML key locators find that line; the checks of single values (keys of a table, strings, integers,
choices, models, languages) raise those messages with what is allowed. `spec.spec_from_dict` builds on them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from xner_core.errors import ConfigError

# Maps a key path to its 1-based line in the spec file (None when it cannot be found).
Locator = Callable[[tuple[Any, ...]], "int | None"]


class _Where:
    """Builds error messages that name the file, the line (when found) and the key path."""

    def __init__(self, origin: str, locate: Locator | None) -> None:
        self.origin = origin
        self.locate = locate or (lambda path: None)

    def error(self, path: tuple[Any, ...], message: str) -> ConfigError:
        line = self.locate(path) if path else None
        key = _dotted(path)
        where = self.origin + (f", line {line}" if line else "") + (f" ({key})" if key else "")
        return ConfigError(f"{where}: {message}")


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _check_keys(w: _Where, path: tuple[Any, ...], data: Mapping[str, Any], allowed: Sequence[str],
                where: str) -> None:
    for key in data:
        if key not in allowed:
            raise w.error((*path, key), f"unknown key {key!r}; allowed {where}: {', '.join(allowed)}")


def _str(w: _Where, path: tuple[Any, ...], value: Any, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise w.error(path, f"must be a {'' if allow_empty else 'non-empty '}string, got {value!r}")
    return value.strip()


def _str_list(w: _Where, path: tuple[Any, ...], value: Any) -> list[tuple[tuple[Any, ...], str]]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise w.error(path, f"must be a non-empty list of strings, got {value!r}")
    out = []
    for i, item in enumerate(items):
        p = path if isinstance(value, str) else (*path, i)
        out.append((p, _str(w, p, item)))
    return out


def _int(w: _Where, path: tuple[Any, ...], value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        hi = f" and <= {maximum}" if maximum is not None else ""
        raise w.error(path, f"{value!r} is invalid; allowed: an integer >= {minimum}{hi}")
    return value


def _choice(w: _Where, path: tuple[Any, ...], value: Any, allowed: Sequence[str], kind: str) -> str:
    if value not in allowed:
        raise w.error(path, f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")
    return value


def _model(w: _Where, path: tuple[Any, ...], value: Any) -> str:
    """A model is a short name, a hub id (`org/name`, or one of the aliases' ids) or a directory with config.json."""
    from xner_core.models.registry import HUB_MODELS, MODEL_NAMES

    name = _str(w, path, value)
    if name in MODEL_NAMES or name in HUB_MODELS.values():
        return name
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise w.error(path, f"model directory {name!r} has no config.json; give a directory written by "
                                f"save_pretrained, or one of: {', '.join(MODEL_NAMES)}")
        return str(p.resolve())
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name) and not p.exists():
        return name  # a hub id; whether it exists is only known online
    raise w.error(path, f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}, a hub id like "
                        f"'org/name' ({', '.join(HUB_MODELS.values())} too) or a local model directory")


def _language(w: _Where, path: tuple[Any, ...], value: Any) -> str:
    from xner_core.corpus.languages import get_language

    if not isinstance(value, str):
        raise w.error(path, f"a language code must be a string like 'es', got {value!r}")
    try:
        return get_language(value).code
    except ConfigError as exc:
        raise w.error(path, str(exc)) from None


# =============================================================================================================
# locating keys in spec files (for error messages)


def _key_parts(text: str) -> list[str]:
    return [p.strip().strip("\"'") for p in text.split(".")]


def _toml_locator(text: str) -> Locator:
    """Line numbers of keys in TOML text (1-based): headers `[a]`/`[[a]]` and `key = ...` lines; inline tables
    fall back to the first line assigning the last key."""
    lines = text.splitlines()
    key_re = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")

    def locate(path: tuple[Any, ...]) -> int | None:
        target = tuple(path)
        table: tuple[Any, ...] = ()
        counts: dict[tuple[Any, ...], int] = {}
        for i, line in enumerate(lines, 1):
            st = line.strip()
            if st.startswith("[["):
                name = tuple(_key_parts(st[2:st.find("]]")]))
                counts[name] = counts.get(name, -1) + 1
                table = (*name, counts[name])
                if table == target or name == target:
                    return i
                continue
            if st.startswith("["):
                table = tuple(_key_parts(st[1:st.find("]")]))
                if table == target:
                    return i
                continue
            m = key_re.match(line)
            if m and not st.startswith("#"):
                full = (*table, *_key_parts(m.group(1)))
                if full == target or (len(target) > len(full) and target[:len(full)] == full):
                    return i
        last = next((p for p in reversed(target) if isinstance(p, str)), None)
        if last is not None:
            pat = re.compile(rf"(^|[\s{{,]){re.escape(last)}\s*=")
            for i, line in enumerate(lines, 1):
                if pat.search(line):
                    return i
        return None

    return locate


def _yaml_locator(root: Any) -> Locator:
    """Line numbers of keys in a composed YAML node tree (1-based)."""

    def locate(path: tuple[Any, ...]) -> int | None:
        node, line = root, None
        for p in path:
            if node is None:
                break
            if isinstance(p, int) and hasattr(node, "value") and isinstance(node.value, list) and \
                    node.tag.endswith(":seq"):
                if p >= len(node.value):
                    break
                node = node.value[p]
                line = node.start_mark.line + 1
            elif isinstance(node.value, list) and node.tag.endswith(":map"):
                for k, v in node.value:
                    if k.value == p:
                        line, node = k.start_mark.line + 1, v
                        break
                else:
                    break
            else:
                break
        return line

    return locate
