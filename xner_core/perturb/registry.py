"""Stage 2, perturb: the registry of label-preserving, seeded perturbations of a target test set.

Each entry names a planner (`xner_core.perturb.replace`, `xner_core.perturb.noise`) and the context parts it
needs; `xner_core.perturb.apply` runs them over a corpus or one sentence.

The reference study's perturbations (docs/paper-spec.md §4), with "source" = the source training set (the HRL train set
in transfer, the target's own train set in native) and "target" = the target test set:
- P1 `entity_replace`: entity chunks (B + its I tokens; surface string = tokens joined by a space) whose string
  also occurs as a chunk in the source ("shared") become a random same-type target chunk that does not occur in
  the source ("unshared"); B on the first token, I on the rest.
- P2 `context_replace`: O tokens that are context candidates (not a target-language stopword, no punctuation or
  symbol character, longer than one character) and whose lowercased form is in the source's O-word vocabulary
  become the most cosine-similar other candidate word of the target vocabulary that is not in the source
  O-vocabulary, with the original's case restored.
- P3 `entity_context`: P1 and P2 on the same sentence.
- P5-style `context_random`: the same words as P2, replaced by a random non-overlapping target word.
Extra probes: `person_swap` / `location_swap` (donor-language names), `entity_mask`, `mask_random`
(Srinivasan & Vajjala 2023 style), `char_noise` (one typo per chosen entity token) and `context_noise` (one typo
per chosen context word: the spec's "character-level typos in entity or context tokens", context side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.errors import ConfigError, choices_message
from xner_core.perturb.context import PerturbContext
from xner_core.perturb.noise import _plan_char_noise, _plan_context_noise, _plan_entity_mask, _plan_mask_random
from xner_core.perturb.plan import PlanFn
from xner_core.perturb.replace import (
    _make_swap,
    _plan_context_random,
    _plan_context_replace,
    _plan_context_replace_study,
    _plan_entity_context,
    _plan_entity_context_study,
    _plan_entity_random,
    _plan_entity_random_matched,
    _plan_entity_replace,
    _plan_entity_replace_matched,
    _prepare_neighbours,
    _prepare_neighbours_study,
)


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation.

    Attributes:
        name: stable registry name (CLI argument, results column).
        title: short human title (dashboard).
        description: one paragraph on what is changed and how.
        needs: the context parts it reads ("source", "target", "donor", "embed").
        fn: plans the edits of one sentence: (sentence, context, streams, rate) -> plan.
        prepare: optional batch step run once per corpus before `fn` (e.g. embedding all words at once).
    """

    name: str
    title: str
    description: str
    needs: tuple[str, ...]
    fn: PlanFn = field(repr=False)
    prepare: Callable[[Sequence[Sentence], PerturbContext], None] | None = field(default=None, repr=False)


_REGISTRY: tuple[Perturbation, ...] = (
    Perturbation(
        "entity_replace", "P1 · unseen entities",
        "Entity chunks of the target whose surface string also occurs as a chunk in the source training set are "
        "replaced by a random same-type chunk of the target that never occurs in the source (paper P1).",
        ("source", "target"), _plan_entity_replace,
    ),
    Perturbation(
        "context_replace", "P2 · nearest unseen context words",
        "Non-stopword, punctuation-free O words (longer than one character) that also occur as O words in the "
        "source are replaced by the most cosine-similar target word not seen in the source, case restored (P2).",
        ("source", "target", "embed"), _plan_context_replace, _prepare_neighbours,
    ),
    Perturbation(
        "entity_context", "P3 · unseen entities + context",
        "P1 and P2 applied to the same sentences (paper P3).",
        ("source", "target", "embed"), _plan_entity_context, _prepare_neighbours,
    ),
    Perturbation(
        "entity_random", "P1 control · random entities",
        "The control of P1: in each sentence as many entities as P1 changes there (same seed and rate), chosen at "
        "random among all its entities whether the source has them or not, each replaced by a random same-type "
        "chunk of the target (seen in the source or not). P1's drop minus this one's is what unseen entities "
        "cost beyond changing an entity at all.",
        ("source", "target"), _plan_entity_random,
    ),
    Perturbation(
        "context_replace_study", "P2 (study's rules) · nearest unseen context words",
        "P2 with the reference study's own word rules: the target's own stopwordsiso list only (none for sco, "
        "cy, oc, scn, an, ast), ASCII punctuation only, source O words as written minus the source's stopwords, "
        "and a lowercased target word replaced only when the source has it as written (docs/paper-spec.md).",
        ("source", "target", "embed"), _plan_context_replace_study, _prepare_neighbours_study,
    ),
    Perturbation(
        "entity_context_study", "P3 (study's rules) · unseen entities + context",
        "P1 and P2 by the study's own word rules on the same sentences.",
        ("source", "target", "embed"), _plan_entity_context_study, _prepare_neighbours_study,
    ),
    Perturbation(
        "entity_replace_matched", "P1 at a matched share of entities",
        "P1 where the rate is the share of ALL gold entities of the test set to change (not of those the source "
        "has), so native and transfer models see the same fraction of entities changed; where the source shares "
        "fewer, all it shares are changed and the row's changed-entity fraction says so.",
        ("source", "target"), _plan_entity_replace_matched,
    ),
    Perturbation(
        "entity_random_matched", "P1 control at a matched share",
        "The random-entity control of the matched P1: in each sentence as many entities as it changes, chosen "
        "among all entities, seen in the source or not.",
        ("source", "target"), _plan_entity_random_matched,
    ),
    Perturbation(
        "context_random", "P5 · random unseen context words",
        "The same overlapping O words as P2, each replaced by a random target word not seen in the source "
        "(the study's P5 random replacement, applied to NER).",
        ("source", "target"), _plan_context_random,
    ),
    Perturbation(
        "person_swap", "Person names from a donor language",
        "Every PER chunk is replaced by a random PER chunk of the donor language's data (cross-lingual name "
        "replacement; the study used Wiktionary given names).",
        ("donor",), _make_swap("PER", "person_swap"),
    ),
    Perturbation(
        "location_swap", "Places from a donor language",
        "Every LOC chunk is replaced by a random LOC chunk of the donor language's data (the study used "
        "Wiktionary place names).",
        ("donor",), _make_swap("LOC", "location_swap"),
    ),
    Perturbation(
        "entity_mask", "Masked entities",
        "Every token of every entity chunk is replaced by the mask string (default [MASK]); tags are kept.",
        (), _plan_entity_mask,
    ),
    Perturbation(
        "mask_random", "Masked / random context words",
        "Each non-stopword, punctuation-free O word is masked with probability 0.5, else replaced by a random "
        "other word of the target vocabulary (Srinivasan & Vajjala 2023 style context perturbation).",
        ("target",), _plan_mask_random,
    ),
    Perturbation(
        "char_noise", "Typos in entities",
        "Each entity token of two or more characters gets one typo: swapped adjacent characters, a deleted, "
        "inserted or substituted character (letters of the token's own script).",
        (), _plan_char_noise,
    ),
    Perturbation(
        "context_noise", "Typos in context words",
        "Each non-stopword, punctuation- and symbol-free O word longer than one character (P2's context "
        "candidates) gets one typo: swapped adjacent characters, a deleted, inserted or substituted character "
        "(letters of the token's own script). Entity tokens and tags are untouched.",
        (), _plan_context_noise,
    ),
)

PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in _REGISTRY}


def perturbation_names() -> list[str]:
    """Return the registered perturbation names in registry order (paper P1, P2, P3 first)."""
    return list(PERTURBATIONS)


def get_perturbation(name: str) -> Perturbation:
    """Look up a perturbation by name.

    Args:
        name: a registry name.

    Returns:
        The Perturbation.

    Raises:
        ConfigError: unknown name (the message lists the allowed names).
    """
    try:
        return PERTURBATIONS[name]
    except (KeyError, TypeError):
        raise ConfigError(choices_message("perturbation", name, list(PERTURBATIONS))) from None
