"""Stage 1, corpus: the CoNLL reader and writer for USER files (uploads, `--gold/--pred` files, exports).

User files are untrusted: every problem becomes a `DataError` that names the line and what is allowed, never a
traceback. Accepted: one token per line, token in the first column and tag in the last (tab- or space-separated;
one column means unlabeled text), blank lines between sentences, `-DOCSTART-` lines, a UTF-8 BOM, CRLF, WikiANN
`<lang>:` token prefixes, gzip. IOB1 and BIOES/BILOU tags are converted to IOB2 with a warning.

CoNLL-2002/2003 files carry more than tokens and PER/ORG/LOC tags: columns between the token and the tag (POS,
chunk, ...) and entities of other types (MISC, ...). The corpus holds what every stage reads (the other types
read as O, counted per type, or refused with `other_types="error"`); the rest is kept beside it, aligned token by
token, as `FileColumns`, so `write_conll(..., columns=)` writes a (perturbed) copy with them intact
(`xner_core.perturb.columns.carry_columns` aligns them with a perturbed copy).
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

from xner_core.corpus.sentences import Corpus, Sentence
from xner_core.corpus.tags import (
    ENTITY_TYPES,
    LABELS,
    bioes_to_iob2,
    detect_scheme,
    first_invalid,
    iob1_to_iob2,
    spans,
)
from xner_core.errors import ConfigError, DataError

SCHEMES: tuple[str, ...] = ("iob2", "iob1", "bioes", "none")
OTHER_TYPES: tuple[str, ...] = ("o", "error")  # what `read_conll` does with entity types other than PER/ORG/LOC
# Prefixes accepted on input (S/E = BIOES, U/L = BILOU); everything is IOB2 after conversion.
_INPUT_PREFIXES = ("B", "I", "E", "S", "L", "U")
_ALLOWED_MSG = (
    f"allowed: {', '.join(LABELS)} (IOB1 and BIOES/BILOU prefixes S-/E-/U-/L- are converted to IOB2; "
    "MISC and other types are refused here: read them as O with other_types='o', `--other-types o`)"
)
_DOCSTART = "-DOCSTART-"
# A WikiANN language prefix on a token: "br:Kemper", "zh-yue:..." (only stripped when every token has the same one).
_PREFIX_RE = re.compile(r"^([a-z]{2,3}(?:-[a-z]+)*):.")


@dataclass(frozen=True)
class FileColumns:
    """What a user file holds per token besides the token and its PER/ORG/LOC tag, aligned with its corpus.

    Attributes:
        width: the number of columns between the token and the tag (0 for one- and two-column files).
        extra: per sentence, per token, those columns' fields (POS, chunk, ...); `()` per token when width is 0.
        other: per sentence, per token, the IOB2 tag of an entity of another type that the corpus reads as O
            ("B-MISC", "I-MISC"), "" elsewhere.
    """

    width: int
    extra: tuple[tuple[tuple[str, ...], ...], ...]
    other: tuple[tuple[str, ...], ...]

    @staticmethod
    def empty(corpus: Corpus) -> "FileColumns":
        """No extra columns and no other types, aligned with `corpus`."""
        return FileColumns(0, tuple(((),) * len(s) for s in corpus), tuple(("",) * len(s) for s in corpus))

    def head(self, n: int | None) -> "FileColumns":
        """The columns of the first `n` sentences (all when n is None), as `Corpus.head`."""
        return self if n is None else FileColumns(self.width, self.extra[:n], self.other[:n])

    def other_counts(self) -> dict[str, int]:
        """Entity chunks of other types per type, sorted by type."""
        counts: dict[str, int] = {}
        for other in self.other:
            for sp in spans([t or "O" for t in other]):
                counts[sp.etype] = counts.get(sp.etype, 0) + 1
        return dict(sorted(counts.items()))

    def check(self, corpus: Corpus) -> None:
        """Raise DataError unless these columns are aligned with `corpus` token by token."""
        if len(self.extra) != len(corpus) or len(self.other) != len(corpus) or any(
                len(e) != len(s) or len(o) != len(s) for e, o, s in zip(self.extra, self.other, corpus)):
            raise DataError("the file's columns are not aligned with the corpus (one row per token of every "
                            "sentence is needed)")


@dataclass(frozen=True)
class ConllResult:
    """A parsed user file.

    Attributes:
        corpus: the sentences (IOB2 over PER/ORG/LOC; all "O" when unlabeled).
        labeled: False when the file had a single (token) column.
        scheme: the scheme found in the file: "iob2", "iob1", "bioes", or "none" when unlabeled.
        converted: True when tags were converted to IOB2.
        warnings: human-readable notes about what was changed or skipped.
        columns: the columns between token and tag and the other types' tags, aligned with `corpus`.
        other_types: entity chunks of other types read as O, per type (e.g. {"MISC": 12}); empty when none.
    """

    corpus: Corpus
    labeled: bool
    scheme: str
    converted: bool
    warnings: tuple[str, ...]
    columns: FileColumns | None = None
    other_types: dict[str, int] = field(default_factory=dict, hash=False)

    @property
    def mapped_entities(self) -> int:
        """How many entity chunks of other types were read as O."""
        return sum(self.other_types.values())

    def head(self, n: int | None) -> "ConllResult":
        """The first `n` sentences (all when n is None) with their columns and other-type counts."""
        if n is None or n >= len(self.corpus):
            return self
        columns = self.columns.head(n) if self.columns is not None else None
        counts = columns.other_counts() if columns is not None else {}
        return replace(self, corpus=self.corpus.head(n), columns=columns, other_types=counts)


def _read_source(source: str | bytes | os.PathLike[str], max_bytes: int) -> tuple[bytes, str]:
    """Return (raw bytes, display name). A str with a newline is text; any other str is a path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), ""
    elif isinstance(source, str) and ("\n" in source or "\r" in source):
        data, name = source.encode("utf-8", "surrogatepass"), ""
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        name = str(path)[:300]
        try:
            exists, is_file = path.exists(), path.is_file()
        except (OSError, ValueError):  # a name too long or with NUL: not a file we can open
            exists = is_file = False
        if not exists:
            raise DataError(f"{name}: no such file; give an existing CoNLL file (or text with newlines, or bytes)")
        if not is_file:
            raise DataError(f"{name}: not a regular file; give a CoNLL file (one token per line)")
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise DataError(f"{name}: file is {size:,} bytes; the limit is {max_bytes:,} bytes")
            data = path.read_bytes()
        except OSError as err:
            raise DataError(f"{name}: cannot read the file ({err.strerror or err})") from None
    else:
        raise DataError(f"cannot read CoNLL from a {type(source).__name__}; give a path, bytes or text")
    if len(data) > max_bytes:
        raise DataError(f"{_where(name)}input is {len(data):,} bytes; the limit is {max_bytes:,} bytes")
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, name, max_bytes)
    return data, name


def _gunzip(data: bytes, name: str, max_bytes: int) -> bytes:
    """Decompress gzip input (all members), stopping past `max_bytes` so a small bomb cannot exhaust memory."""
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += d.decompress(rest, max_bytes + 1 - len(out))
            if len(out) > max_bytes:
                raise DataError(f"{_where(name)}decompressed input exceeds the limit of {max_bytes:,} bytes")
            if not d.eof:
                raise zlib.error("truncated stream")
            rest = d.unused_data.lstrip(b"\x00")  # some tools pad gzip files with NULs
    except zlib.error as err:
        raise DataError(
            f"{_where(name)}not a readable gzip file ({err}); give plain or gzip-compressed UTF-8 text"
        ) from None
    return bytes(out)


def _where(name: str) -> str:
    return f"{name}: " if name else ""


def _decode(data: bytes, name: str) -> str:
    """UTF-8 text without BOM; binary or other encodings are refused with the line of the first bad byte."""
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise DataError(f"{_where(name)}line {line}: binary data or UTF-16 (NUL byte); expected UTF-8 CoNLL text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{_where(name)}line {line}: not valid UTF-8 (byte {data[err.start]:#04x}); save the file as UTF-8"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _check_tag(tag: str, lineno: int, name: str, other_types: str) -> None:
    if tag == "O":
        return
    prefix, dash, etype = tag.partition("-")
    if dash and prefix in _INPUT_PREFIXES and etype in ENTITY_TYPES:
        return
    # Another type (MISC, GPE, ...) may be read as O; a misspelt PER/ORG/LOC ("per") never is.
    if dash and prefix in _INPUT_PREFIXES and etype and other_types == "o" and etype.upper() not in ENTITY_TYPES:
        return
    what = f"entity type {etype!r} is unsupported" if dash and prefix in _INPUT_PREFIXES else "unknown tag"
    raise DataError(f"{_where(name)}line {lineno}: {what} ({tag[:40]!r}); {_ALLOWED_MSG}")


def _split_other(tags: list[str]) -> tuple[list[str], list[str]]:
    """IOB2 tags -> (tags over PER/ORG/LOC with other types as O, the other types' IOB2 tags or "")."""
    kept = [t if t == "O" or t[2:] in ENTITY_TYPES else "O" for t in tags]
    other = iob1_to_iob2([t if t != "O" and t[2:] not in ENTITY_TYPES else "O" for t in tags])
    return kept, [t if t != "O" else "" for t in other]


def read_conll(
    source: str | bytes | os.PathLike[str],
    lang: str = "xx",
    max_bytes: int = 20_000_000,
    max_line_chars: int = 10_000,
    max_tokens_per_sentence: int = 1000,
    other_types: str = "o",
) -> ConllResult:
    """Read a user's CoNLL file into IOB2 sentences, validating everything.

    Args:
        source: a path (str without newline or PathLike), raw bytes (e.g. an upload), or text containing newlines.
        lang: the language code for the sentences. With the default "xx", a WikiANN prefix shared by every
            token (e.g. "br:") is stripped and becomes the language; with an explicit code, only that code's
            prefix is stripped.
        max_bytes: refuse larger inputs (after gzip decompression too).
        max_line_chars: refuse longer lines.
        max_tokens_per_sentence: refuse longer sentences.
        other_types: entity types other than PER/ORG/LOC (MISC, ...): "o" reads them as O and counts them per
            type (`ConllResult.other_types`, with a warning), "error" refuses the file at their first line.

    Returns:
        A ConllResult; sentence ids are `f"{lang}-user-{i}"`; the columns between token and tag in `columns`.

    Raises:
        ConfigError: an `other_types` other than "o" or "error".
        DataError: with "line N: ..." for unknown or unsupported tags, an I- without B- in an IOB2 file, mixed
            column counts, empty tokens, over-long lines or sentences; also for binary / non-UTF-8 input, files
            over `max_bytes`, missing files, and input without any sentence.
    """
    if other_types not in OTHER_TYPES:
        raise ConfigError(f"unknown other_types {other_types!r}; choose one of: {', '.join(OTHER_TYPES)} "
                          "(read entity types other than PER/ORG/LOC as O, or refuse the file)")
    data, name = _read_source(source, max_bytes)
    text = _decode(data, name)
    if "\n" not in text:
        text = text.replace("\r", "\n")  # classic-Mac line ends
    warnings: list[str] = []

    # Pass 1: split into sentences of (line number, fields), checking the layout.
    sentences: list[list[tuple[int, list[str]]]] = []
    current: list[tuple[int, list[str]]] = []
    n_cols = 0
    first_line = 0
    docstarts = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if len(line) > max_line_chars:
            raise DataError(
                f"{_where(name)}line {lineno}: line has {len(line):,} characters; the limit is {max_line_chars:,}"
            )
        line = line.rstrip()  # CR of CRLF, trailing spaces or tabs
        if not line:
            if current:
                sentences.append(current)
                current = []
            continue
        # Tab-separated when the line has a tab (tokens may then contain spaces), else whitespace-separated.
        fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
        if fields[0] == _DOCSTART:
            docstarts += 1
            if current:
                sentences.append(current)
                current = []
            continue
        if not n_cols:
            n_cols, first_line = len(fields), lineno
        elif len(fields) != n_cols:
            raise DataError(
                f"{_where(name)}line {lineno}: {len(fields)} columns, but line {first_line} has {n_cols}; every line "
                "needs the same columns (token first, tag last; one column for unlabeled text)"
            )
        if not fields[0]:
            raise DataError(f"{_where(name)}line {lineno}: empty token; the first column must be a token")
        if n_cols > 1:
            _check_tag(fields[-1], lineno, name, other_types)
        current.append((lineno, fields))
        if len(current) > max_tokens_per_sentence:
            raise DataError(
                f"{_where(name)}line {lineno}: the sentence starting at line {current[0][0]} has more than "
                f"{max_tokens_per_sentence:,} tokens; separate sentences with blank lines"
            )
    if current:
        sentences.append(current)
    if not sentences:
        raise DataError(
            f"{_where(name)}no sentences found; expected one token per line (token first, tag last) "
            "with blank lines between sentences"
        )
    if docstarts:
        warnings.append(f"skipped {docstarts} -DOCSTART- line(s)")

    labeled = n_cols > 1
    token_seqs = [[f[0] for _, f in sent] for sent in sentences]
    line_seqs = [[n for n, _ in sent] for sent in sentences]
    tag_seqs = [[f[-1] for _, f in sent] for sent in sentences] if labeled else [["O"] * len(s) for s in sentences]
    extra = tuple(tuple(tuple(f[1:-1]) for _, f in sent) for sent in sentences)
    other_seqs: list[list[str]] = [[""] * len(s) for s in sentences]
    other_counts: dict[str, int] = {}

    token_seqs, lang = _strip_prefixes(token_seqs, lang, warnings)
    orig_tags = tag_seqs

    # Pass 2: tagging scheme -> IOB2, then the IOB2 contract with the original line numbers.
    scheme, converted = "none", False
    if labeled:
        scheme = detect_scheme(tag_seqs)
        if scheme == "bioes":
            tag_seqs = [bioes_to_iob2(t) for t in tag_seqs]
            converted = True
            warnings.append("converted BIOES/BILOU tags to IOB2")
        elif scheme == "iob1":
            tag_seqs = [iob1_to_iob2(t) for t in tag_seqs]
            converted = True
            warnings.append("converted IOB1 tags to IOB2 (chunks opening with I- now open with B-)")
        if other_types == "o":
            split = [_split_other(tags) for tags in tag_seqs]
            tag_seqs, other_seqs = [k for k, _ in split], [o for _, o in split]
            other_counts = FileColumns(0, (), tuple(tuple(o) for o in other_seqs)).other_counts()
            if other_counts:
                counts = ", ".join(f"{n:,} {t}" for t, n in sorted(other_counts.items()))
                total = sum(other_counts.values())
                warnings.append(f"read {total:,} entit{'y' if total == 1 else 'ies'} of other types as O ({counts}); "
                                "only PER, ORG and LOC are tagged and scored")
        for tags, orig, lines in zip(tag_seqs, orig_tags, line_seqs):
            bad = first_invalid(tags)
            if bad is not None:
                etype = tags[bad][2:]
                prev = orig[bad - 1] if bad else "the sentence start"
                raise DataError(
                    f"{_where(name)}line {lines[bad]}: {orig[bad]} without B-{etype} (it follows {prev}); "
                    f"a chunk must start with B-{etype} and I-{etype} only continues it ({scheme.upper()} file)"
                )
        if not other_counts and not any(t != "O" for tags in tag_seqs for t in tags):
            warnings.append("the file has a tag column but no entities (every tag is O)")

    out = tuple(
        Sentence(tuple(toks), tuple(tags), lang, f"{lang}-user-{i}")
        for i, (toks, tags) in enumerate(zip(token_seqs, tag_seqs))
    )
    meta = (("source", name or "<input>"), ("scheme", scheme))
    columns = FileColumns(max(n_cols - 2, 0), extra, tuple(tuple(o) for o in other_seqs))
    return ConllResult(Corpus(out, lang, "user", meta), labeled, scheme, converted, tuple(warnings), columns,
                       other_counts)


def _strip_prefixes(token_seqs: list[list[str]], lang: str, warnings: list[str]) -> tuple[list[list[str]], str]:
    """Strip a WikiANN `<lang>:` prefix when every token carries the same one (see `read_conll`)."""
    first = _PREFIX_RE.match(token_seqs[0][0])
    if first is None:
        return token_seqs, lang
    prefix = first.group(1) + ":"
    if not all(t.startswith(prefix) and len(t) > len(prefix) for toks in token_seqs for t in toks):
        return token_seqs, lang
    code = prefix[:-1]
    if lang not in ("xx", code):
        warnings.append(f"every token starts with {prefix!r} (a WikiANN language prefix?) but lang is {lang!r}; kept")
        return token_seqs, lang
    warnings.append(f"removed the WikiANN language prefix {prefix!r} from every token")
    n = len(prefix)
    return [[t[n:] for t in toks] for toks in token_seqs], code


def write_conll(corpus: Corpus, path: str | os.PathLike[str] | None = None,
                columns: FileColumns | None = None) -> str:
    """Write `token<TAB>tag` lines, a blank line after each sentence; `read_conll` reads it back unchanged.

    Args:
        corpus: the sentences to write.
        path: where to write (UTF-8); None to only return the text.
        columns: the file's other columns, aligned with `corpus` (`ConllResult.columns`, or
            `perturb.columns.carry_columns` for a perturbed copy): each line is then `token<TAB>extra...<TAB>tag`,
            and a token the corpus tags O gets its other-type tag back (B-MISC), so the file reads back the same.

    Returns:
        The CoNLL text.

    Raises:
        DataError: an empty sentence, a token that cannot round-trip (empty, surrounded by whitespace,
            containing a tab, newline, carriage return or NUL, or equal to -DOCSTART-), a column field with
            surrounding whitespace, a tab, newline, carriage return or NUL, or columns not aligned with `corpus`.

    Note: a corpus whose every token starts with the same WikiANN-like prefix ("ab:") reads back with the
    prefix stripped unless `read_conll` gets a `lang` other than "xx" and that code.
    """
    return _write_columns(corpus, {}, path, columns)


def predictions_conll(corpus: Corpus, predictions: Mapping[str, Sequence[Sequence[str]]],
                      path: str | os.PathLike[str] | None = None) -> str:
    """Write `token<TAB>gold<TAB>pred...` lines: the corpus's tags, then one column per prediction set.

    Args:
        corpus: the sentences with their gold tags.
        predictions: column name -> one tag list per sentence (aligned with `corpus`), written in this order
            (no header line, so `read_conll` reads the file back with the LAST prediction column as its tags).
        path: where to write (UTF-8); None to only return the text.

    Returns:
        The text. Raises DataError as `write_conll`, or when a prediction set is misaligned.
    """
    for name, tags in predictions.items():
        if len(tags) != len(corpus) or any(len(t) != len(s.tokens) for t, s in zip(tags, corpus.sentences)):
            raise DataError(f"prediction column {name!r} is not aligned with the corpus (one tag per token of "
                            "every sentence is needed)")
    return _write_columns(corpus, predictions, path)


def _write_columns(corpus: Corpus, extra: Mapping[str, Sequence[Sequence[str]]],
                   path: str | os.PathLike[str] | None, file_columns: FileColumns | None = None) -> str:
    lines: list[str] = []
    columns = list(extra.values())
    if file_columns is not None:
        file_columns.check(corpus)
        for k, rows in enumerate(file_columns.extra):
            for i, fields in enumerate(rows):
                if len(fields) != file_columns.width or any(
                        f != f.strip() or any(c in f for c in "\t\n\r\x00") for f in fields):
                    raise DataError(f"sentence {corpus[k].id or k} token {i}: columns {fields!r} cannot be written "
                                    f"as CoNLL; {file_columns.width} fields without surrounding whitespace, tabs, "
                                    "newlines or NUL are needed")
    for k, sent in enumerate(corpus.sentences):
        if not sent.tokens:
            # A blank line is the separator, so an empty sentence would vanish (and shift every later sentence).
            raise DataError(f"sentence {sent.id or '?'} has no tokens; CoNLL cannot represent empty sentences")
        for i, (tok, tag) in enumerate(zip(sent.tokens, sent.tags)):
            if not tok or tok != tok.strip() or any(c in tok for c in "\t\n\r\x00") or tok == _DOCSTART:
                raise DataError(
                    f"sentence {sent.id or '?'} token {i} {tok[:40]!r} cannot be written as CoNLL; tokens must be "
                    "non-empty, without surrounding whitespace, tabs, newlines or NUL, and not -DOCSTART-"
                )
            if file_columns is not None:
                tag = tag if tag != "O" else file_columns.other[k][i] or "O"
                lines.append("\t".join([tok, *file_columns.extra[k][i], tag]) + "\n")
                continue
            lines.append("\t".join([tok, tag, *(col[k][i] for col in columns)]) + "\n")
        lines.append("\n")
    text = "".join(lines)
    if path is not None:
        Path(path).expanduser().write_text(text, encoding="utf-8", newline="\n")
    return text
