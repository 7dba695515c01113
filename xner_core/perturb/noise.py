"""Stage 2, perturb: the masking and typo planners (`entity_mask`, `mask_random`, `char_noise`, `context_noise`).

They destroy surface information instead of substituting unseen material: mask strings, random other words, and
one character edit per chosen token (`typo`), in the token's own script.
"""

from __future__ import annotations

import random
import string
import unicodedata
from functools import lru_cache

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import spans
from xner_core.perturb.context import PerturbContext
from xner_core.perturb.plan import Streams, _candidate, _Edit, _Lazy, _Plan, restore_case


def _plan_entity_mask(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    lazy = _Lazy(streams, "entity_mask")
    mask = ctx.mask_token
    edits = []
    tok_el = ent_el = 0
    for sp in spans(s.tags):
        chunk = s.tokens[sp.start:sp.end]
        if all(t == mask for t in chunk):
            continue
        ent_el += 1
        tok_el += len(chunk)
        sel, _ = lazy.get()
        if sel.random() < rate:
            edits.append(_Edit(sp.start, sp.end, (mask,) * len(chunk), "mask"))
    return _Plan(tuple(edits), tok_el, ent_el)


def _plan_mask_random(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    lazy = _Lazy(streams, "mask_random")
    vocab = ctx.target_vocab
    edits = []
    eligible = 0
    for i, (tok, tag) in enumerate(zip(s.tokens, s.tags)):
        if tag != "O":
            continue
        low = _candidate(ctx, tok)
        if low is None:
            continue
        eligible += 1
        sel, cho = lazy.get()
        masked = cho.random() < 0.5
        j = ctx._target_index.get(low)
        other = None
        if vocab:
            n = len(vocab) - (j is not None)
            if n > 0:
                k = cho.randrange(n)
                other = vocab[k + 1 if j is not None and k >= j else k]
        if sel.random() < rate:
            if masked or other is None:  # nothing else to swap in: mask instead
                edits.append(_Edit(i, i + 1, (ctx.mask_token,), "mask"))
            else:
                edits.append(_Edit(i, i + 1, (restore_case(tok, other),), "context"))
    return _Plan(tuple(edits), eligible, 0)


_ASCII_LOWER = tuple(string.ascii_lowercase)
_ASCII_UPPER = tuple(string.ascii_uppercase)
_ASCII_DIGITS = tuple(string.digits)


def _script(ch: str) -> str:
    return unicodedata.name(ch, "").split(" ", 1)[0]


@lru_cache(maxsize=4096)
def _alphabet_like(ch: str) -> tuple[str, ...]:
    """Characters a typo may put in place of (or next to) `ch`: same script, same letter category, not `ch`.

    ASCII letters/digits map to ASCII letters of the same case / digits (the realistic typos for Latin text);
    other letters to the letters of the same 256-code-point block, script (first word of the Unicode name) and
    category. Non-letters give (): whitespace or punctuation can never be produced.
    """
    if ch.isascii():
        base = _ASCII_LOWER if ch.islower() else _ASCII_UPPER if ch.isupper() else _ASCII_DIGITS if ch.isdigit() else ()
        return tuple(c for c in base if c != ch)
    if not ch.isalpha():
        return ()
    cat, script, start = unicodedata.category(ch), _script(ch), ord(ch) & ~0xFF
    return tuple(
        c for c in map(chr, range(start, start + 0x100))
        if c != ch and unicodedata.category(c) == cat and c.isalpha() and _script(c) == script
    )


def typo(token: str, rng: random.Random) -> str:
    """Apply one character edit to a token of length >= 2: swap adjacent, delete, insert or substitute.

    Args:
        token: the token (len >= 2).
        rng: the generator choosing the edit.

    Returns:
        A different, non-empty token without whitespace (the inserted/substituted characters are letters or
        digits of the script of a character of the token).
    """
    swaps = [i for i in range(len(token) - 1) if token[i] != token[i + 1]]
    letters = [i for i, ch in enumerate(token) if _alphabet_like(ch)]
    ops = ["delete"] + (["swap"] if swaps else []) + (["insert", "substitute"] if letters else [])
    op = ops[rng.randrange(len(ops))]
    if op == "delete":
        i = rng.randrange(len(token))
        return token[:i] + token[i + 1:]
    if op == "swap":
        i = swaps[rng.randrange(len(swaps))]
        return token[:i] + token[i + 1] + token[i] + token[i + 2:]
    i = letters[rng.randrange(len(letters))]
    alphabet = _alphabet_like(token[i])
    ch = alphabet[rng.randrange(len(alphabet))]
    if op == "substitute":
        return token[:i] + ch + token[i + 1:]
    at = i + rng.randrange(2)  # before or after the character whose script it copies
    return token[:at] + ch + token[at:]


def _plan_char_noise(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    lazy = _Lazy(streams, "char_noise")
    edits = []
    tok_el = ent_el = 0
    for sp in spans(s.tags):
        has_eligible = False
        for i in range(sp.start, sp.end):
            tok = s.tokens[i]
            if len(tok) < 2:
                continue
            has_eligible = True
            tok_el += 1
            sel, cho = lazy.get()
            new = typo(tok, cho)
            if sel.random() < rate:
                edits.append(_Edit(i, i + 1, (new,), "noise"))
        ent_el += has_eligible
    return _Plan(tuple(edits), tok_el, ent_el)


def _plan_context_noise(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    # The context side of the spec's typo probe: the same words P2's candidate test accepts (O, not a stopword of
    # the context's language, no punctuation/symbol, longer than one character), each given one `typo`.
    lazy = _Lazy(streams, "context_noise")
    edits = []
    eligible = 0
    for i, (tok, tag) in enumerate(zip(s.tokens, s.tags)):
        if tag != "O" or _candidate(ctx, tok) is None:
            continue
        eligible += 1
        sel, cho = lazy.get()
        new = typo(tok, cho)  # drawn for every eligible token, so a lower rate keeps the same typos
        if sel.random() < rate:
            edits.append(_Edit(i, i + 1, (new,), "noise"))
    return _Plan(tuple(edits), eligible, 0)
