"""Stage 2, perturb: the replacement planners: unseen entities (P1) and its random-entity control, nearest or
random unseen context words (P2, P5), both (P3), and donor-language name swaps.

P2's candidate test (`context_candidate`) lives in `overlap.py`, the lower-level stage: the overlap measure and
the perturbations use the one function, so the O-word overlap counts exactly the words P2 can target.
"""

from __future__ import annotations

from typing import Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import spans
from xner_core.perturb.context import PerturbContext, chunk_key
from xner_core.perturb.plan import PlanFn, Streams, _Edit, _Lazy, _pick, _Plan, restore_case


def _plan_entity_replace(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    lazy = _Lazy(streams, "entity_replace")
    edits: list[_Edit] = []
    tok_el = ent_el = 0
    for sp in spans(s.tags):
        chunk = s.tokens[sp.start:sp.end]
        if chunk_key(chunk) not in ctx.source_chunks:
            continue
        ent_el += 1
        tok_el += len(chunk)
        sel, cho = lazy.get()
        # The pool holds only non-source strings, so the pick always differs from this (shared) chunk.
        new = _pick(ctx.unshared_chunks.get(sp.etype, ()), cho)
        if sel.random() < rate and new is not None:
            edits.append(_Edit(sp.start, sp.end, new, "entity", sp.etype))
    return _Plan(tuple(edits), tok_el, ent_el)


def _plan_entity_random(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    """P1's control: in each sentence, as many entities as P1 changes there (P1's own selection, same seed and
    rate), but chosen uniformly among ALL the sentence's entities, seen in the source or not, and each replaced by
    a random same-type chunk of the target, seen or not (never the chunk itself). Against P1 it separates "the
    entity is now unseen" from "an entity changed at all"."""
    k = len(_plan_entity_replace(s, ctx, streams, rate).edits)
    found = list(spans(s.tags))
    tokens = sum(sp.end - sp.start for sp in found)
    if k == 0:
        return _Plan((), tokens, len(found))
    sel, cho = streams.pair("entity_random")
    # random.sample's first k picks do not depend on k, so a lower rate (a smaller k) changes a subset; every
    # entity draws its replacement whether chosen or not, so a chosen entity gets the same one at any rate.
    chosen = set(sel.sample(range(len(found)), k))
    edits: list[_Edit] = []
    for i, sp in enumerate(found):
        chunk = s.tokens[sp.start:sp.end]
        new = _pick(ctx.target_chunks.get(sp.etype, ()), cho,
                    ctx._chunk_index.get(sp.etype, {}).get(chunk_key(chunk)))
        if i in chosen and new is not None:
            edits.append(_Edit(sp.start, sp.end, new, "entity", sp.etype))
    return _Plan(tuple(edits), tokens, len(found))


def _make_swap(etype: str, name: str) -> PlanFn:
    def plan(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
        lazy = _Lazy(streams, name)
        pool = ctx.donor_chunks.get(etype, ())
        index = ctx._donor_index.get(etype, {})
        edits: list[_Edit] = []
        tok_el = ent_el = 0
        for sp in spans(s.tags):
            if sp.etype != etype:
                continue
            chunk = s.tokens[sp.start:sp.end]
            ent_el += 1
            tok_el += len(chunk)
            sel, cho = lazy.get()
            new = _pick(pool, cho, index.get(chunk_key(chunk)))  # never the same name back
            if sel.random() < rate and new is not None:
                edits.append(_Edit(sp.start, sp.end, new, "entity", etype))
        return _Plan(tuple(edits), tok_el, ent_el)

    return plan


def _overlap_positions(s: Sentence, ctx: PerturbContext, rules: str = "xner") -> list[tuple[int, str]]:
    """(position, lowercased word) of the O tokens P2/P5 target: candidates under `rules` that the source has
    (`perturb.p2rules`: ours compare lowercased source words, the study's the source words as written)."""
    words = ctx.words(rules)
    out = []
    for i, (tok, tag) in enumerate(zip(s.tokens, s.tags)):
        if tag == "O":
            low = words.candidate(tok)
            if low is not None and low in words.source_words:
                out.append((i, low))
    return out


def _context_replace(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float, rules: str) -> _Plan:
    units = _overlap_positions(s, ctx, rules)
    if not units:
        return _Plan((), 0, 0)
    # Deterministic choice: only selection is random. Both rule sets draw from the "context_replace" stream, so
    # a word both select is kept or left alike.
    sel, _ = streams.pair("context_replace")
    nearest = ctx.nearest_fresh((low for _, low in units), rules)
    edits = []
    for i, low in units:
        new = nearest[low]
        if sel.random() < rate and new is not None:
            edits.append(_Edit(i, i + 1, (restore_case(s.tokens[i], new),), "context"))
    return _Plan(tuple(edits), len(units), 0)


def _plan_context_replace(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    return _context_replace(s, ctx, streams, rate, "xner")


def _plan_context_replace_study(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    """P2 by the study's own rules (`perturb.p2rules`)."""
    return _context_replace(s, ctx, streams, rate, "study")


def _plan_context_random(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    units = _overlap_positions(s, ctx)
    if not units:
        return _Plan((), 0, 0)
    sel, cho = streams.pair("context_random")
    pool = ctx.fresh_words
    edits = []
    for i, _low in units:
        new = pool[cho.randrange(len(pool))] if pool else None  # never `low`: pool excludes source O words
        if sel.random() < rate and new is not None:
            edits.append(_Edit(i, i + 1, (restore_case(s.tokens[i], new),), "context"))
    return _Plan(tuple(edits), len(units), 0)


def _plan_entity_context(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float,
                         rules: str = "xner") -> _Plan:
    # P1 touches only entity tokens and P2 only O tokens, and P2's choice of a token depends on that token alone,
    # so planning both on the original sentence equals applying P1 then P2. Each part uses its own streams:
    # P3's changes are exactly P1's plus P2's for the same seed.
    p1 = _plan_entity_replace(s, ctx, streams, rate)
    p2 = _context_replace(s, ctx, streams, rate, rules)
    return _Plan(p1.edits + p2.edits, p1.tokens_eligible + p2.tokens_eligible, p1.entities_eligible)


def _plan_entity_context_study(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    """P3 with P2 by the study's own rules."""
    return _plan_entity_context(s, ctx, streams, rate, "study")


def _plan_entity_replace_matched(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    """P1 where `rate` is the share of ALL the target's entities to change (`PerturbContext.eligible_rate`), so
    native and transfer models (whose sources share very different amounts) see the same fraction changed. Same
    streams as P1: at any share it changes a subset of what P1 changes."""
    return _plan_entity_replace(s, ctx, streams, ctx.eligible_rate(rate))


def _plan_entity_random_matched(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    """The random-entity control of `entity_replace_matched`: as many entities, chosen among all."""
    return _plan_entity_random(s, ctx, streams, ctx.eligible_rate(rate))


def _prepare_neighbours(sentences: Sequence[Sentence], ctx: PerturbContext, rules: str = "xner") -> None:
    """Embed every word P2 (under `rules`) will look up in one batched pass, before the per-sentence loop."""
    words = {low for s in sentences for _, low in _overlap_positions(s, ctx, rules)}
    if words:
        ctx.nearest_fresh(sorted(words), rules)


def _prepare_neighbours_study(sentences: Sequence[Sentence], ctx: PerturbContext) -> None:
    """`_prepare_neighbours` under the study's rules."""
    _prepare_neighbours(sentences, ctx, "study")
