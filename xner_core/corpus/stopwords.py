"""Stage 2 support, perturb: stopword lists per language (the `stopwordsiso` lists the reference study used).

The study's context perturbation (P2) skips stopwords of the target language, taken from `stopwordsiso`.
`stopwordsiso` 0.7.1 covers 32 of the 46 WikiANN languages of our pool. For the others we borrow the list of the
closest covered language only where the choice is obvious (a close relative whose function words are largely
spelled the same), and otherwise use no stopwords at all:

| language | list used | why |
|---|---|---|
| sco Scots | en | Anglic; Scots shares most English function words (the, and, o ~ of, in, tae ~ to) |
| ast Asturian | es | Ibero-Romance; de, la, el, que, en, con, por |
| an Aragonese | es | Ibero-Romance; de, la, a, en, que, con, por |
| scn Sicilian | it | Italo-Romance; di, la, e, chi ~ che, cu ~ con, pi ~ per |
| oc Occitan | ca | Occitano-Romance: Catalan is Occitan's closest relative (de, la, e, que, en, per, amb ~ amb) |
| az be cy jv kk ne ps ta tg | none | no close relative with a list in the same script and spelling |

`stopwords_for` always returns a frozenset (empty for the last row, so the stopword filter is a no-op there);
`has_stopwords` says whether that set is non-empty and `stopword_source` which list was used.
"""

from __future__ import annotations

from functools import lru_cache
from types import MappingProxyType
from typing import Mapping

import stopwordsiso

# Borrowed lists for pool languages that stopwordsiso lacks (see the module docstring for the reasons).
FALLBACKS: Mapping[str, str] = MappingProxyType({"sco": "en", "ast": "es", "an": "es", "scn": "it", "oc": "ca"})


def _norm(lang: str) -> str:
    """Lowercase a language code and drop a region/script suffix ("pt-BR" -> "pt", "zh_Hans" -> "zh")."""
    return lang.strip().lower().replace("_", "-").split("-", 1)[0]


def stopword_source(lang: str) -> str | None:
    """Return the code of the stopwordsiso list used for `lang`.

    Args:
        lang: an ISO 639-1/-3 code as used in WikiANN (e.g. "ca", "sco").

    Returns:
        `lang` itself when stopwordsiso covers it, the fallback language for the borrowed cases of the module
        docstring, else None (no stopwords).
    """
    code = _norm(lang)
    if code and stopwordsiso.has_lang(code):
        return code
    return FALLBACKS.get(code)


@lru_cache(maxsize=None)
def stopwords_for(lang: str, borrow: bool = True) -> frozenset[str]:
    """Return the lowercased stopwords of a language.

    Args:
        lang: a language code (case and a region suffix are ignored).
        borrow: use the fallback list of the module docstring where stopwordsiso has none (ours); False gives
            stopwordsiso's own list or nothing, as the study's code did (`stopwordsiso.stopwords(lang)`).

    Returns:
        The stopwordsiso list of the language (or of its fallback, see `stopword_source`), lowercased; the
        empty set when neither exists, so callers can filter with it unconditionally.
    """
    code = _norm(lang)
    src = stopword_source(lang) if borrow else (code if code and stopwordsiso.has_lang(code) else None)
    if src is None:
        return frozenset()
    return frozenset(w.lower() for w in stopwordsiso.stopwords(src))


def has_stopwords(lang: str) -> bool:
    """Return True when `stopwords_for(lang)` is non-empty (own list or a borrowed one).

    Args:
        lang: a language code.

    Returns:
        False for languages where the stopword filter is a no-op.
    """
    return bool(stopwords_for(lang))
