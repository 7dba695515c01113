"""Stage 2, perturb: apply a registered perturbation to a corpus or one sentence and record every change.

A perturbation is a pure function of (sentence, context, rng): it plans edits on one sentence, and
`perturb_corpus` / `perturb_sentence` apply them and record every change. Contract (docs/design.md):
- tokens outside the changed spans are untouched; only entity replacements (`entity_replace`, `person_swap`,
  `location_swap`) may change the length of the span they replace;
- the output is valid IOB2, with the same entity types in the same order (entity count preserved);
- the result is a function of (seed, perturbation name, sentence id or index) only, so a sentence is perturbed
  the same way alone (`perturb_sentence`) as inside its corpus (`perturb_corpus`);
- `rate` is the probability that each eligible unit (an entity chunk or a context token) is changed; 1.0 changes
  all of them, as in the study. Selection and replacement use separate random streams, so the changes made at a
  lower rate are a subset of those made at a higher one, with the same replacements.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from xner_core.corpus.sentences import Corpus, Sentence
from xner_core.corpus.tags import first_invalid, span_tags, spans
from xner_core.errors import ConfigError, DataError
from xner_core.perturb.context import _NEED_TEXT, PerturbContext
from xner_core.perturb.plan import Streams, _Plan
from xner_core.perturb.records import Change, PerturbReport, PerturbResult
from xner_core.perturb.registry import Perturbation, get_perturbation


def _check_args(pert: Perturbation, context: PerturbContext, seed: int, rate: float) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not 0 <= rate <= 1:
        raise ConfigError(
            f"rate must be a number in [0, 1] (the fraction of eligible units changed; 1 = all); got {rate!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer; got {seed!r}")
    missing = [n for n in pert.needs if getattr(context, n) is None]
    if missing:
        what = "; ".join(_NEED_TEXT[n] for n in missing)
        raise ConfigError(f"perturbation {pert.name!r} needs {what}; missing from the context: {', '.join(missing)}")
    return float(rate)


def _check_sentence(s: Sentence, index: int) -> None:
    bad = first_invalid(s.tags)
    if bad is not None:
        raise DataError(
            f"sentence {s.id or index!r}: tag {s.tags[bad]!r} at token {bad} is not valid IOB2; perturbations "
            "need IOB2 tags over O, B-/I-PER, B-/I-ORG, B-/I-LOC (convert IOB1/BIOES first)"
        )


def _apply(s: Sentence, plan: _Plan, index: int) -> tuple[Sentence, list[Change], int]:
    """Apply a plan's edits; return the new sentence, its changes and the number of entity chunks touched."""
    if not plan.edits:
        return s, [], 0
    edits = sorted(plan.edits, key=lambda e: e.start)
    toks: list[str] = []
    tags: list[str] = []
    changes: list[Change] = []
    pos = 0
    for e in edits:
        if e.start < pos:
            raise AssertionError(f"overlapping edits in sentence {index}")  # a planner bug, never user input
        toks.extend(s.tokens[pos:e.start])
        tags.extend(s.tags[pos:e.start])
        new_start = len(toks)
        toks.extend(e.new)
        tags.extend(span_tags(e.etype, len(e.new)) if e.etype else s.tags[e.start:e.end])
        changes.append(Change(s.id, e.start, e.end, s.tokens[e.start:e.end], e.new, e.kind, index, new_start))
        pos = e.end
    toks.extend(s.tokens[pos:])
    tags.extend(s.tags[pos:])
    touched = sum(1 for sp in spans(s.tags) if any(e.start < sp.end and sp.start < e.end for e in edits))
    return s.replace(toks, tags), changes, touched


def _sentence_key(s: Sentence, index: int) -> str:
    return s.id if s.id else f"#{index}"


def _run(
    pert: Perturbation, sentences: Sequence[Sentence], indices: Sequence[int], context: PerturbContext,
    seed: int, rate: float,
) -> tuple[list[Sentence], PerturbReport, tuple[Change, ...]]:
    for s, i in zip(sentences, indices):
        _check_sentence(s, i)
    if pert.prepare is not None:
        pert.prepare(sentences, context)
    out: list[Sentence] = []
    changes: list[Change] = []
    n_tok = n_ent = tok_el = ent_el = tok_ch = ent_ch = sent_ch = sent_el = 0
    for s, i in zip(sentences, indices):
        plan = pert.fn(s, context, Streams(seed, _sentence_key(s, i)), rate)
        new, ch, touched = _apply(s, plan, i)
        out.append(new)
        changes.extend(ch)
        n_tok += len(s)
        n_ent += sum(1 for t in s.tags if t.startswith("B-"))
        tok_el += plan.tokens_eligible
        ent_el += plan.entities_eligible
        sent_el += plan.tokens_eligible > 0 or plan.entities_eligible > 0
        tok_ch += sum(len(c.old) for c in ch)
        ent_ch += touched
        sent_ch += bool(ch)
    report = PerturbReport(
        name=pert.name, seed=int(seed), rate=rate, sentences=len(sentences), sentences_eligible=sent_el,
        sentences_changed=sent_ch, tokens=n_tok, tokens_eligible=tok_el, tokens_changed=tok_ch, entities=n_ent,
        entities_eligible=ent_el, entities_changed=ent_ch,
    )
    return out, report, tuple(changes)


def perturb_corpus(name: str, corpus: Corpus, context: PerturbContext, seed: int = 0,
                   rate: float = 1.0) -> PerturbResult:
    """Perturb every sentence of a corpus.

    Args:
        name: a registered perturbation name (see `perturbation_names()`).
        corpus: the sentences to perturb (normally the target test set); valid IOB2.
        context: from `build_context`, holding what the perturbation needs.
        seed: random seed; each sentence's streams derive from (seed, name, sentence id or index).
        rate: probability in [0, 1] that each eligible unit is changed (1.0 = all, the study's setting).

    Returns:
        The perturbed corpus (same lang/split, meta extended with the perturbation, seed and rate), a report and
        the list of changes.

    Raises:
        ConfigError: unknown name, bad rate or seed, or a context missing what the perturbation needs.
        DataError: a sentence whose tags are not valid IOB2.
    """
    pert = get_perturbation(name)
    rate = _check_args(pert, context, seed, rate)
    out, report, changes = _run(pert, corpus.sentences, range(len(corpus)), context, seed, rate)
    meta = corpus.meta + (("perturbation", name), ("seed", str(seed)), ("rate", repr(rate)))
    return PerturbResult(Corpus(tuple(out), corpus.lang, corpus.split, meta), report, changes)


def perturb_sentence(name: str, sentence: Sentence, context: PerturbContext, seed: int = 0, rate: float = 1.0,
                     index: int = 0) -> PerturbResult:
    """Perturb one sentence (e.g. one a user typed), exactly as it would be inside a corpus.

    Args:
        name: a registered perturbation name.
        sentence: the sentence; valid IOB2.
        context: from `build_context`; entity/context replacements need its source and target.
        seed: random seed.
        rate: probability in [0, 1] that each eligible unit is changed.
        index: the sentence's position in its corpus; only used when it has no id, so that the result equals
            row `index` of `perturb_corpus`.

    Returns:
        A PerturbResult whose corpus holds the one perturbed sentence.

    Raises:
        ConfigError / DataError: as `perturb_corpus`.
    """
    pert = get_perturbation(name)
    rate = _check_args(pert, context, seed, rate)
    out, report, changes = _run(pert, (sentence,), (index,), context, seed, rate)
    return PerturbResult(Corpus(tuple(out), sentence.lang), report, changes)
