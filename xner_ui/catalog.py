"""Names the pages show: languages, language pairs, perturbations and URIEL distance kinds, read from the core's
tables and registries (cheap lookups; no files besides the bundled tables, no Streamlit).

Pages import the library only through `xner_ui` (and the analysis constants): these are the lookups they need.
"""

from __future__ import annotations

from dataclasses import dataclass

from xner_core.corpus.languages import get_language, known_languages, parse_pair
from xner_core.features.distance import DISTANCE_KINDS
from xner_core.perturb.registry import get_perturbation
from xner_core.perturb.registry import perturbation_names as _perturbation_names

__all__ = ["DISTANCE_KINDS", "PairInfo", "PerturbationInfo", "language_name", "language_names", "pair_info",
           "perturbation_info", "perturbation_names"]  # DISTANCE_KINDS: the URIEL kinds (diversity index choices)


def language_name(code: str) -> str:
    """The English name of a WikiANN language code, e.g. "Breton" for "br", "Cantonese" for "zh-yue"."""
    return get_language(code).name


def language_names() -> dict[str, str]:
    """Every language the pickers offer as code -> name, alphabetical by code: the language table, the other
    WikiANN languages of the hub (176 in all) and any with local data (`languages.known_languages`)."""
    return {lang.code: lang.name for lang in known_languages()}


@dataclass(frozen=True)
class PairInfo:
    """How source and target are related: the study's relation (or "other") and a note."""

    relation: str
    note: str


def pair_info(source: str, target: str) -> PairInfo:
    """The relation of a pair (the study's 13 reference pairs carry theirs; others are "other")."""
    pair = parse_pair(f"{source}-{target}")
    return PairInfo(pair.relation, pair.note)


def perturbation_names() -> list[str]:
    """The registered perturbations, in registry order."""
    return _perturbation_names()


@dataclass(frozen=True)
class PerturbationInfo:
    """A perturbation as the pages describe it."""

    name: str
    title: str
    description: str
    needs: tuple[str, ...]


def perturbation_info(name: str) -> PerturbationInfo:
    """Title, description and the context parts (source, target, donor, embed) a perturbation reads."""
    p = get_perturbation(name)
    return PerturbationInfo(p.name, p.title, p.description, tuple(p.needs))
