"""Stage 3a, model sources: a fine-tuned checkpoint's own labels (`config.id2label`) mapped onto our IOB2 labels.

A token classifier trained elsewhere names its labels its own way: `B-PERSON`, `S-LOC`, `L-ORG` (BIOES/BILOU),
plain `PER` (IO), `MISC`, `DATE`, ... `map_labels` turns each of its output ids into one of `corpus.tags.LABELS`:

- types: PER/PERSON -> PER, ORG/ORGANIZATION/ORGANISATION -> ORG, LOC/LOCATION/GPE -> LOC (any case); every other
  type (MISC, DATE, ...) -> O, and is reported as dropped;
- prefixes (any case, `-` or `_` between prefix and type): B -> B, I -> I, S/U (a one-token entity) -> B,
  E/L (the last token of an entity) -> I, no prefix (IO tagging) -> I; `O` -> O.

The per-label map makes a predicted sequence IOB2 up to stray I- tags (E-X after O, an IO entity's first token),
which `corpus.tags.repair_iob2` then opens as entities, as it does for every model's predictions. So
`LabelMapping.apply` (and `inference.predict.predict_tags(..., labels=mapping.labels)`) always returns valid IOB2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from xner_core.corpus.tags import ENTITY_TYPES, repair_iob2
from xner_core.errors import ConfigError

# The checkpoint entity types that map onto ours (upper case).
TYPE_ALIASES: dict[str, str] = {
    "PER": "PER", "PERSON": "PER",
    "ORG": "ORG", "ORGANIZATION": "ORG", "ORGANISATION": "ORG",
    "LOC": "LOC", "LOCATION": "LOC", "GPE": "LOC",
}
# Checkpoint prefix -> our IOB2 prefix.
PREFIXES: dict[str, str] = {"B": "B", "I": "I", "S": "B", "U": "B", "E": "I", "L": "I"}
_LABEL = re.compile(r"^(?P<prefix>[BIESLU])[-_](?P<etype>.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class LabelMapping:
    """How a checkpoint's output ids map onto our IOB2 labels.

    Attributes:
        source: the checkpoint's labels, in id order.
        labels: our IOB2 label of each id (same order and length as `source`).
        scheme: the checkpoint's tagging scheme: "iob2", "bioes", "bilou" or "io".
        types: (checkpoint type, our type) for every type kept, e.g. ("PERSON", "PER").
        dropped: checkpoint types mapped to O (e.g. "MISC").
    """

    source: tuple[str, ...]
    labels: tuple[str, ...]
    scheme: str
    types: tuple[tuple[str, str], ...]
    dropped: tuple[str, ...]

    @property
    def identity(self) -> bool:
        """True when the checkpoint's labels are already ours (nothing renamed or dropped)."""
        return self.source == self.labels

    @property
    def unmapped(self) -> tuple[str, ...]:
        """Our entity types that no checkpoint label predicts (its F1 on them is 0)."""
        kept = {ours for _, ours in self.types}
        return tuple(t for t in ENTITY_TYPES if t not in kept)

    def apply(self, predicted: Sequence[str]) -> list[str]:
        """Map one predicted sequence of checkpoint labels to valid IOB2.

        Args:
            predicted: checkpoint labels (each one of `source`).

        Returns:
            Valid IOB2 tags of the same length; raises ConfigError for a label the checkpoint does not have.
        """
        index = {label: i for i, label in enumerate(self.source)}
        try:
            return repair_iob2([self.labels[index[tag]] for tag in predicted])
        except KeyError as exc:
            raise ConfigError(f"label {exc.args[0]!r} is not one of the checkpoint's labels "
                              f"({', '.join(self.source)})") from None

    def describe(self) -> str:
        """One line for reports, e.g. `BIOES; PERSON→PER, LOCATION→LOC; dropped (→ O): MISC`."""
        kept = ", ".join(f"{theirs}→{ours}" for theirs, ours in self.types)
        text = f"{self.scheme.upper()}; {kept}; dropped (→ O): {', '.join(self.dropped) or 'none'}"
        if self.unmapped:
            text += f"; never predicted: {', '.join(self.unmapped)}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report (for `--json` and the dashboard)."""
        return {"scheme": self.scheme, "types": {theirs: ours for theirs, ours in self.types},
                "dropped": list(self.dropped), "never_predicted": list(self.unmapped),
                "labels": {theirs: ours for theirs, ours in zip(self.source, self.labels)},
                "description": self.describe()}


def _split(label: str) -> tuple[str | None, str | None]:
    """(prefix, type) of a checkpoint label: (None, None) for O, (None, TYPE) for an IO label."""
    text = label.strip()
    if text.upper() == "O":
        return None, None
    match = _LABEL.match(text)
    if match:
        return match["prefix"].upper(), match["etype"].strip().upper()
    return None, text.upper()


def _scheme(prefixes: set[str]) -> str:
    if prefixes & {"L", "U"}:
        return "bilou"
    if prefixes & {"E", "S"}:
        return "bioes"
    return "iob2" if "B" in prefixes else "io"


def map_labels(id2label: Mapping[Any, Any]) -> LabelMapping:
    """Map a checkpoint's `config.id2label` onto our IOB2 labels (see the module docstring for the rules).

    Args:
        id2label: output id (int or numeric string) -> the checkpoint's label.

    Returns:
        The mapping; raises ConfigError naming the labels found and the accepted ones when no label maps to
        PER, ORG or LOC (or the ids are not 0..n-1).
    """
    try:
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        raise ConfigError(f"the checkpoint's id2label keys {sorted(map(str, id2label))} are not integer ids") from None
    if not ids or ids != list(range(len(ids))):
        raise ConfigError(f"the checkpoint's id2label has ids {ids}; expected 0..n-1 (a token classifier's labels)")
    by_id = {int(k): str(v) for k, v in id2label.items()}
    source = tuple(by_id[i] for i in ids)
    labels: list[str] = []
    types: dict[str, str] = {}
    dropped: dict[str, None] = {}
    prefixes: set[str] = set()
    for label in source:
        prefix, etype = _split(label)
        if etype is None:
            labels.append("O")
            continue
        prefixes.add(prefix or "")
        ours = TYPE_ALIASES.get(etype)
        if ours is None:
            dropped[etype] = None
            labels.append("O")
            continue
        types.setdefault(etype, ours)
        labels.append(f"{PREFIXES.get(prefix or 'I', 'I')}-{ours}")
    if not types:
        accepted = ", ".join(sorted(TYPE_ALIASES))
        raise ConfigError(
            f"no label of the checkpoint maps to PER, ORG or LOC: found {', '.join(source)}; accepted entity types "
            f"(any case, with B-/I-/E-/S-/L-/U- prefixes or none): {accepted}; other types (MISC, ...) become O")
    return LabelMapping(source=source, labels=tuple(labels), scheme=_scheme(prefixes),
                        types=tuple(types.items()), dropped=tuple(dropped))
