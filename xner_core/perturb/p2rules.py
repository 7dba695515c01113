"""Stage 2, perturb: which context words P2/P3/P5 may replace, under our rules or the reference study's own.

Both rule sets take the target test set's O tokens, keep "candidates" and replace those the source has; they
differ in four details (measured in review: the study's rules reproduce its published P2 fractions at
r = 0.96 / 0.89, transfer / native, against 0.90 / 0.77 for ours):

- target stopwords: ours use stopwordsiso, or a close relative's list where it has none (sco, ast, an, scn, oc);
  the study used stopwordsiso's own list only (none for sco, cy, oc, scn, an, ast);
- punctuation: ours exclude any Unicode punctuation or symbol character, the study ASCII `string.punctuation` only;
- source words: ours are the source's O tokens lowercased; the study's its O tokens as written, minus the source
  language's stopwords (compared as written);
- overlap: ours compare the lowercased target word with the lowercased source words; the study with the source
  words as written (so a capitalised source word never matches).

The study's code (csu-signal/xlingual-robustness, `finetuning_NER/Gnerate_perturbation_dataset.ipynb`): target
words are `word.lower()` of O tokens with `word.lower() not in stopwords(target)`, no character of
`string.punctuation` and `len(word) > 1`; source words are O tokens with `word not in stopwords(source)`, as
written; the replaced words are `set(source_words) & set(target_words)`; each gets the most cosine-similar target
word that is not a source word and not itself.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Iterable

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.stopwords import stopwords_for
from xner_core.errors import ConfigError, choices_message
from xner_core.features.overlap import context_candidate

P2_RULES: tuple[str, ...] = ("xner", "study")
_ASCII_PUNCT = frozenset(string.punctuation)


def study_candidate(token: str, stopwords: frozenset[str]) -> str | None:
    """The study's P2 candidate test: the lowercased token when it is longer than one character, has no ASCII
    punctuation character and its lowercase is not a stopword; else None (the O-tag condition is the caller's)."""
    if len(token) <= 1 or any(ch in _ASCII_PUNCT for ch in token):
        return None
    low = token.lower()
    return None if low in stopwords else low


@dataclass(frozen=True)
class ContextWords:
    """The word tables of one rule set.

    Attributes:
        rules: "xner" or "study".
        stopwords: the target's stopwords (lowercased).
        source_words: the source's O words under the rules (lowercased for "xner", as written for "study").
        target_vocab: sorted lowercased candidates among the target's O tokens.
        overlap_words: the candidates the source has (the words replaced).
        fresh_words: sorted candidates the source does not have (the replacement pool).
    """

    rules: str
    stopwords: frozenset[str]
    source_words: frozenset[str]
    target_vocab: tuple[str, ...]
    overlap_words: frozenset[str]
    fresh_words: tuple[str, ...]

    def candidate(self, token: str) -> str | None:
        """The lowercased token when it is a candidate under these rules, else None."""
        if self.rules == "study":
            return study_candidate(token, self.stopwords)
        return context_candidate(token, self.stopwords)


def check_rules(rules: str) -> str:
    """Return `rules` when it is a known rule set, else raise a ConfigError listing them."""
    if rules not in P2_RULES:
        raise ConfigError(choices_message("P2 rule set", rules, list(P2_RULES)))
    return rules


def _o_tokens(corpus: Iterable[Sentence]) -> set[str]:
    return {tok for s in corpus for tok, tag in zip(s.tokens, s.tags) if tag == "O"}


def context_words(source: Iterable[Sentence] | None, target: Iterable[Sentence] | None, lang: str,
                  source_lang: str = "", rules: str = "xner") -> ContextWords:
    """Build the P2 word tables of a (source training set, target test set) under a rule set.

    Args:
        source: the source training set (None: no source, nothing overlaps).
        target: the target test set.
        lang: the target language (its stopwords).
        source_lang: the source's language (its stopwords, "study" rules only; default `lang`).
        rules: "xner" (ours) or "study" (the reference study's code), see the module docstring.

    Returns:
        The ContextWords.
    """
    check_rules(rules)
    study = rules == "study"
    stop = stopwords_for(lang, borrow=not study)
    source_o = _o_tokens(source or ())
    if study:
        source_stop = stopwords_for(source_lang or lang, borrow=False)
        source_words = frozenset(w for w in source_o if w not in source_stop)
    else:
        source_words = frozenset(w.lower() for w in source_o)
    test = study_candidate if study else context_candidate
    vocab = {low for tok in _o_tokens(target or ()) if (low := test(tok, stop)) is not None}
    return ContextWords(rules, stop, source_words, tuple(sorted(vocab)), frozenset(vocab & source_words),
                        tuple(sorted(vocab - source_words)))
