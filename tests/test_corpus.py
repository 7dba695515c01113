"""Tests for stage 1, corpus: WikiANN readers (local files, hub fallback), paper re-split, corpus statistics."""

from __future__ import annotations

import gzip
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from xner_core.corpus import wikiann as C
from xner_core.corpus.resplit import paper_resplit, split_sizes
from xner_core.corpus.sentences import Corpus, CorpusStats, Sentence, corpus_stats
from xner_core.corpus.tags import LABELS, is_valid_iob2
from xner_core.corpus.wikiann import SPLITS, available_languages, hf_rows_to_corpus, load_wikiann
from xner_core.errors import ConfigError, DataError

# ---------------------------------------------------------------------------------------------------------------
# helpers: a tiny WikiANN directory built in tmp_path
# ---------------------------------------------------------------------------------------------------------------

BR_TRAIN = "br:Herri\tB-PER\nbr:II\tI-PER\nbr:eo\tO\n\nbr:br:x\tO\nbr:Kemper\tB-LOC\n\n"
ES_TEST = "1:10\tO\nMadrid\tB-LOC\n\n:\tO\nReal\tB-ORG\nMadrid\tI-ORG\n"


def _write(path: Path, text: str, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def wdir(tmp_path: Path) -> Path:
    """br (prefixed, gzip) train/test, es (plain, not gzipped) test."""
    C.clear_cache()
    _write(tmp_path / "br" / "train", BR_TRAIN, gz=True)
    _write(tmp_path / "br" / "test", BR_TRAIN.replace("Herri", "Yann"), gz=True)
    _write(tmp_path / "es" / "test", ES_TEST, gz=False)
    return tmp_path


def _as_pairs(corpus: Corpus) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(s.tokens, s.tags) for s in corpus]


# ---------------------------------------------------------------------------------------------------------------
# load_wikiann on hand-made files
# ---------------------------------------------------------------------------------------------------------------


def test_splits_constant():
    assert SPLITS == ("train", "dev", "test", "extra")


def test_load_prefixed_gz(wdir: Path):
    c = load_wikiann("br", "train", wdir)
    assert _as_pairs(c) == [
        (("Herri", "II", "eo"), ("B-PER", "I-PER", "O")),
        # only the leading "br:" is the prefix: a token that itself starts with "br:" keeps it
        (("br:x", "Kemper"), ("O", "B-LOC")),
    ]
    assert [s.id for s in c] == ["br-train-0", "br-train-1"]
    assert {s.lang for s in c} == {"br"} and c.lang == "br" and c.split == "train"
    assert dict(c.meta)["format"] == "prefixed"


def test_load_plain_file_keeps_colon_tokens(wdir: Path):
    c = load_wikiann("es", "test", wdir)
    assert _as_pairs(c) == [
        (("1:10", "Madrid"), ("O", "B-LOC")),
        ((":", "Real", "Madrid"), ("O", "B-ORG", "I-ORG")),
    ]
    assert dict(c.meta)["format"] == "plain"


def test_gz_preferred_over_plain(wdir: Path):
    _write(wdir / "br" / "train", "other\tO\n", gz=False)
    assert load_wikiann("br", "train", wdir)[0].tokens == ("Herri", "II", "eo")


def test_data_dir_from_env(wdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XNER_DATA_DIR", str(wdir))
    assert len(load_wikiann("es", "test")) == 2


def test_limit(wdir: Path):
    assert len(load_wikiann("br", "train", wdir, limit=1)) == 1
    assert len(load_wikiann("br", "train", wdir, limit=0)) == 0
    assert len(load_wikiann("br", "train", wdir, limit=99)) == 2
    with pytest.raises(ConfigError, match="limit"):
        load_wikiann("br", "train", wdir, limit=-1)


def test_cache_returns_same_object_and_sees_changes(wdir: Path):
    a = load_wikiann("br", "train", wdir)
    assert load_wikiann("br", "train", wdir) is a
    # rewrite with different content and size: the (path, mtime, size) key changes
    path = _write(wdir / "br" / "train", "br:Nevez\tO\n", gz=True)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    b = load_wikiann("br", "train", wdir)
    assert b is not a and b[0].tokens == ("Nevez",)


def test_cache_evicts_beyond_token_budget(wdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(C, "_CACHE_MAX_TOKENS", 6)
    a = load_wikiann("br", "train", wdir)  # 5 tokens
    load_wikiann("es", "test", wdir)  # 5 more: over budget, evicts br train
    assert load_wikiann("br", "train", wdir) is not a  # reloaded; evicts es test in turn
    assert C._cache_tokens == 5 and len(C._cache) == 1


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a\tO\nb\tB-MISC\n", 2, "unknown tag 'B-MISC'"),
        ("a\tO\n\nb\tO\nnotag\n", 4, "expected '<token><TAB><tag>'"),
        ("a\tO\n\tO\n", 2, "empty token"),
        ("xx:a\tO\nxx:\tO\n", 2, "empty token"),
        ("a\tO\r\nb\tb-per\r\n", 2, "unknown tag 'b-per'"),
    ],
)
def test_bad_file_names_file_and_line(tmp_path: Path, text: str, line: int, fragment: str):
    path = _write(tmp_path / "xx" / "dev", text, gz=True)
    with pytest.raises(DataError) as err:
        load_wikiann("xx", "dev", tmp_path)
    msg = str(err.value)
    assert str(path) in msg and f"line {line}:" in msg and fragment in msg
    if fragment.startswith("unknown tag"):
        assert "allowed: O, B-PER" in msg


def test_binary_and_bad_encoding(tmp_path: Path):
    _write(tmp_path / "xx" / "dev", "a\tO\n", gz=False)
    (tmp_path / "xx" / "dev").write_bytes(b"a\tO\n\xff\tO\n")
    with pytest.raises(DataError, match=r"line 2: not valid UTF-8"):
        load_wikiann("xx", "dev", tmp_path)
    (tmp_path / "xx" / "dev").write_bytes(b"a\tO\nb\x00\tO\n")
    with pytest.raises(DataError, match=r"line 2: binary"):
        load_wikiann("xx", "dev", tmp_path)
    (tmp_path / "xx" / "test.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="gzip"):
        load_wikiann("xx", "test", tmp_path)


def test_unknown_split_lists_splits(wdir: Path):
    with pytest.raises(ConfigError) as err:
        load_wikiann("br", "validation", wdir)
    assert "'validation'" in str(err.value) and "train, dev, test, extra" in str(err.value)


@pytest.mark.parametrize("lang", ["../etc", "br/..", "", "b r"])
def test_bad_language_code(wdir: Path, lang: str):
    with pytest.raises(ConfigError, match="language code"):
        load_wikiann(lang, "test", wdir)


def test_missing_split_of_local_language(wdir: Path):
    with pytest.raises(DataError) as err:
        load_wikiann("br", "extra", wdir)
    assert "available: train, test" in str(err.value)


def test_stray_inside_tags_repaired_to_iob2(tmp_path: Path):
    # ja/zh WikiANN files contain chunks opening with I- (seqeval reads them as new chunks); we make them B-.
    _write(tmp_path / "ja" / "test", "ja:#\tO\nja:グ\tI-LOC\nja:リ\tI-LOC\nja:(\tI-ORG\n\nja:a\tO\n", gz=True)
    c = load_wikiann("ja", "test", tmp_path)
    assert c[0].tags == ("O", "B-LOC", "I-LOC", "B-ORG")
    assert dict(c.meta)["repaired_iob2"] == "1"


@pytest.mark.parametrize(
    "text",
    [
        "a\tO\r\nb\tB-PER\r\n\r\nc\tO\r\n",  # CRLF
        "a O\nb B-PER\n\nc O\n",  # space-separated
        "a\tO\nb\tB-PER\n \n\n\nc\tO\n\n\n",  # whitespace-only and repeated blank lines
        "a\tx\tO\nb\ty\tB-PER\n\nc\tz\tO\n",  # extra middle column: token first, tag last
        "a\tO \nb\tB-PER\n\nc\tO\n",  # trailing space after the tag
    ],
)
def test_tolerated_layouts(tmp_path: Path, text: str):
    _write(tmp_path / "xx" / "test", text, gz=False)
    c = load_wikiann("xx", "test", tmp_path)
    assert _as_pairs(c) == [(("a", "b"), ("O", "B-PER")), (("c",), ("O",))]


TOKEN = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=6)


@st.composite
def iob2_sentence(draw) -> tuple[list[str], list[str]]:
    """Random valid IOB2 sentence."""
    tags: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["O", "PER", "ORG", "LOC"]))
        n = draw(st.integers(1, 3))
        tags += ["O"] * n if kind == "O" else [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
    return [draw(TOKEN) for _ in tags], tags


@settings(max_examples=60, deadline=None)
@given(st.lists(iob2_sentence(), min_size=1, max_size=5), st.booleans(), st.booleans())
def test_parsers_agree_and_read_back(sents, prefixed: bool, crlf: bool):
    """Fast block parser == line parser == what was written, prefixed or not, LF or CRLF."""
    pre = "qq:" if prefixed else ""
    assume(prefixed or not sents[0][0][0].startswith("qq:"))  # else the file would look prefixed
    nl = "\r\n" if crlf else "\n"
    text = nl.join(nl.join(f"{pre}{t}\t{g}" for t, g in zip(*s)) + nl for s in sents)
    parsed = C.parse_wikiann_text(text, "qq", "dev")
    slow, _ = C._parse_lines(text, "qq", "dev", "x", prefixed)
    assert list(parsed.sentences) == slow
    assert [(list(s.tokens), list(s.tags)) for s in parsed] == [(list(a), list(b)) for a, b in sents]


# ---------------------------------------------------------------------------------------------------------------
# available_languages / split_sizes
# ---------------------------------------------------------------------------------------------------------------


def test_available_languages_and_split_sizes(wdir: Path, tmp_path_factory: pytest.TempPathFactory):
    _write(wdir / "cy" / "train", "a\tO\n", gz=True)  # no test split -> not listed
    (wdir / "notalang.txt").write_text("x")
    assert available_languages(wdir) == ["br", "es"]
    assert available_languages(tmp_path_factory.mktemp("empty") / "missing") == []
    assert split_sizes("br", wdir) == {"train": 2, "test": 2}
    assert split_sizes("es", wdir) == {"test": 2}
    assert split_sizes("zz", wdir) == {}


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face hub: pure conversion, mocked hub, and the offline failure
# ---------------------------------------------------------------------------------------------------------------


def test_hf_rows_to_corpus_maps_ids_by_names():
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    rows = [
        {"tokens": ["Yann", "Gwenn", "e", "Kemper"], "ner_tags": [1, 2, 0, 5], "langs": ["br"] * 4},
        {"tokens": [], "ner_tags": []},  # dropped
        {"tokens": ["UN"], "ner_tags": [3]},
    ]
    c = hf_rows_to_corpus(rows, names, "br", "dev")
    assert _as_pairs(c) == [(("Yann", "Gwenn", "e", "Kemper"), ("B-PER", "I-PER", "O", "B-LOC")), (("UN",), ("B-ORG",))]
    assert [s.id for s in c] == ["br-dev-0", "br-dev-1"] and c.split == "dev" and c.lang == "br"


def test_hf_rows_to_corpus_uses_the_given_order_and_repairs():
    names = ["B-LOC", "O", "I-LOC", "B-PER", "I-PER", "B-ORG", "I-ORG"]  # shuffled on purpose
    c = hf_rows_to_corpus([{"tokens": ["a", "b", "c"], "ner_tags": [1, 2, 0]}], names, "zh", "test")
    assert c[0].tags == ("O", "B-LOC", "B-LOC")  # stray I-LOC after O -> B-LOC
    assert dict(c.meta)["repaired_iob2"] == "1"


@pytest.mark.parametrize(
    ("names", "rows", "fragment"),
    [
        (["O", "B-MISC"], [{"tokens": ["a"], "ner_tags": [0]}], "'B-MISC' is not supported"),
        (list(LABELS), [{"tokens": ["a"], "ner_tags": [7]}], "row 0: tag id 7 outside 0..6"),
        (list(LABELS), [{"tokens": ["a"], "ner_tags": [-1]}], "outside 0..6"),
        (list(LABELS), [{"tokens": ["a", "b"], "ner_tags": [0]}], "2 tokens but 1 tags"),
    ],
)
def test_hf_rows_to_corpus_errors(names, rows, fragment):
    with pytest.raises(DataError, match=re.escape(fragment)):
        hf_rows_to_corpus(rows, names, "xx", "test")


def _assert_offline_hint(msg: str) -> None:
    assert "--data-dir" in msg and "XNER_DATA_DIR" in msg


@pytest.mark.timeout(60)
def test_hub_fallback_offline_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # the libraries read the environment at import time: patch their flags too in case they were imported already
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path / "cache"))
    C.clear_cache()
    with pytest.raises(DataError) as err:  # the test's timeout guards against a hang; speed is for benchmarks
        load_wikiann("br", "test", tmp_path / "nodata")
    _assert_offline_hint(str(err.value))
    assert "br" in str(err.value) and "hub" in str(err.value)


@pytest.mark.timeout(60)
def test_hub_unreachable_probe_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused at once
    assert C._hub_reachable(timeout=2.0) is False
    C.clear_cache()
    with pytest.raises(DataError, match="unreachable") as err:
        load_wikiann("sco", "dev", tmp_path)
    _assert_offline_hint(str(err.value))


def test_hub_has_no_extra_split(tmp_path: Path):
    with pytest.raises(DataError, match="hub has none") as err:
        load_wikiann("br", "extra", tmp_path)
    _assert_offline_hint(str(err.value))


def test_hub_success_path_with_a_local_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The hub path end to end, with `datasets.load_dataset` answering from an in-memory Dataset."""
    datasets = pytest.importorskip("datasets")
    C.clear_cache()
    calls: list[tuple] = []

    def fake_load_dataset(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        feats = datasets.Features(
            {
                "tokens": datasets.List(datasets.Value("string")),
                "ner_tags": datasets.List(datasets.ClassLabel(names=list(C.HF_TAG_NAMES))),
            }
        )
        return datasets.Dataset.from_dict({"tokens": [["Roazhon", "kêr"]], "ner_tags": [[5, 0]]}, features=feats)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(C, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path / "cache"))
    c = load_wikiann("br", "dev", tmp_path / "nodata")
    assert calls == [(C.HF_DATASET_ID, "br", "validation")]
    assert _as_pairs(c) == [(("Roazhon", "kêr"), ("B-LOC", "O"))] and c[0].id == "br-dev-0"
    assert load_wikiann("br", "dev", tmp_path / "nodata") is c and len(calls) == 1  # in-process cache

    def broken(*a, **k):
        raise ValueError("BuilderConfig 'qq' not found. Available: ['ace', 'af', ...]")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(DataError) as err:
        load_wikiann("qq", "test", tmp_path / "nodata")
    assert "BuilderConfig 'qq' not found" in str(err.value)
    _assert_offline_hint(str(err.value))


# ---------------------------------------------------------------------------------------------------------------
# paper_resplit
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def pool_dir(tmp_path: Path) -> Path:
    """xx: 30 distinct sentences over train/dev/test/extra, plus 5 duplicates across splits."""
    C.clear_cache()

    def block(i: int) -> str:
        return f"w{i}\tB-PER\nx\tO\n"

    texts = {
        "train": [block(i) for i in range(0, 12)],
        "dev": [block(i) for i in range(12, 18)] + [block(0), block(1)],  # duplicates of train
        "test": [block(i) for i in range(18, 24)] + [block(2), block(3), block(12)],
        "extra": [block(i) for i in range(24, 30)],
    }
    for split, blocks in texts.items():
        _write(tmp_path / "xx" / split, "\n".join(blocks), gz=True)
    return tmp_path


def test_paper_resplit_sizes_dedup_and_determinism(pool_dir: Path):
    tr, te = paper_resplit("xx", pool_dir, cap=None)
    assert (len(tr), len(te)) == (24, 6)  # 30 unique, floor(30 * 0.8)
    all_tokens = [s.tokens for s in tr] + [s.tokens for s in te]
    assert len(set(all_tokens)) == 30  # deduplicated, no sentence in both
    assert tr.split == "train" and te.split == "test" and tr.lang == "xx"
    assert dict(tr.meta)["pooled_unique"] == "30" and dict(tr.meta)["seed"] == "1"
    again = paper_resplit("xx", pool_dir, cap=None)
    assert again == (tr, te)
    other = paper_resplit("xx", pool_dir, cap=None, seed=2)
    assert [s.id for s in other[0]] != [s.id for s in tr]
    # ids keep their provenance
    assert all(re.fullmatch(r"xx-(train|dev|test|extra)-\d+", s.id) for s in tr)


@pytest.mark.parametrize(
    ("cap", "fraction", "sizes"),
    [(17003, 0.8, (24, 6)), (10, 0.8, (8, 2)), (11, 0.8, (8, 3)), (20, 0.5, (10, 10)), (7, 0.9, (6, 1))],
)
def test_paper_resplit_cap_and_fraction(pool_dir: Path, cap: int, fraction: float, sizes: tuple[int, int]):
    tr, te = paper_resplit("xx", pool_dir, cap=cap, train_fraction=fraction)
    assert (len(tr), len(te)) == sizes


def test_paper_resplit_cap_is_a_prefix_of_the_shuffle(pool_dir: Path):
    full_tr, full_te = paper_resplit("xx", pool_dir, cap=None, train_fraction=0.5)
    tr, te = paper_resplit("xx", pool_dir, cap=10, train_fraction=0.5)
    assert list(tr) + list(te) == (list(full_tr) + list(full_te))[:10]


def test_paper_resplit_subset_of_splits(pool_dir: Path):
    tr, te = paper_resplit("xx", pool_dir, cap=None, splits=("train",))
    assert len(tr) + len(te) == 12 and dict(tr.meta)["from_splits"] == "train"


@pytest.mark.parametrize(
    ("kwargs", "exc", "fragment"),
    [
        ({"train_fraction": 1.0}, ConfigError, "train_fraction"),
        ({"train_fraction": 0}, ConfigError, "train_fraction"),
        ({"cap": 1}, ConfigError, "cap"),
        ({"splits": ("train", "validation")}, ConfigError, "unknown split"),
    ],
)
def test_paper_resplit_bad_options(pool_dir: Path, kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        paper_resplit("xx", pool_dir, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# corpus_stats
# ---------------------------------------------------------------------------------------------------------------


def test_corpus_stats_hand_built(source_corpus: Corpus):
    s = corpus_stats(source_corpus)
    assert isinstance(s, CorpusStats)
    assert (s.lang, s.split, s.sentences, s.tokens) == ("es", "train", 4, 26)
    # Juan Pérez, María | Real Madrid, Naciones Unidas | Madrid, Barcelona, Francia, París
    assert s.entities_by_type == {"PER": 2, "ORG": 2, "LOC": 4} and s.entities == 8
    assert s.entity_tokens == 11
    assert s.mean_length == pytest.approx(6.5) and s.max_length == 7
    assert s.vocab_size == 21  # "Madrid", "en" and "." repeat
    hash(s)  # frozen and hashable despite the dict field


def test_corpus_stats_empty_and_unlabeled():
    assert corpus_stats(Corpus((), "xx", "test")).mean_length == 0.0
    s = corpus_stats(Corpus((Sentence(("a", "a", "b"), ("O", "O", "O")),)))
    assert (s.entities, s.entity_tokens, s.vocab_size, s.max_length) == (0, 0, 2, 3)


# ---------------------------------------------------------------------------------------------------------------
# the real shared WikiANN data
# ---------------------------------------------------------------------------------------------------------------

# A few rows of SOURCE.md, pinned here so a changed data folder is noticed even if SOURCE.md changes with it.
PINNED_SIZES = {
    "br": {"train": 1000, "dev": 1000, "test": 1000, "extra": 2568},
    "es": {"train": 20000, "dev": 10000, "test": 10000},
    "sco": {"train": 100, "dev": 100, "test": 100, "extra": 2499},
    "hi": {"train": 5000, "dev": 1000, "test": 1000, "extra": 1853},
}


def _source_table(wikiann_dir: Path) -> dict[str, dict[str, int]]:
    """The per-language sentence counts of SOURCE.md (`| lang | src | train | dev | test | extra |`)."""
    out: dict[str, dict[str, int]] = {}
    text = (wikiann_dir / "SOURCE.md").read_text(encoding="utf-8") if (wikiann_dir / "SOURCE.md").exists() else ""
    for m in re.finditer(r"^\| (\S+) \| [AB] \| (\d+) \| (\d+) \| (\d+) \| (\d+|-) \|$", text, re.M):
        sizes = dict(zip(SPLITS, (m.group(2), m.group(3), m.group(4), m.group(5))))
        out[m.group(1)] = {k: int(v) for k, v in sizes.items() if v != "-"}
    return out


def _check_real_corpus(c: Corpus, lang: str, split: str) -> None:
    assert c.lang == lang and c.split == split and len(c) > 0
    for i, s in enumerate(c):
        assert s.id == f"{lang}-{split}-{i}" and s.lang == lang
        assert all(s.tokens) and len(s.tokens) > 0
        assert is_valid_iob2(s.tags), s.id
    # the prefix is stripped on prefixed files and never left behind
    assert not all(t.startswith(lang + ":") for s in c.sentences[:50] for t in s.tokens)


@pytest.mark.data
def test_real_test_splits_of_every_language(wikiann_dir: Path):
    C.clear_cache()
    langs = available_languages(wikiann_dir)
    assert len(langs) >= 46
    table = _source_table(wikiann_dir)
    t0 = time.perf_counter()
    for lang in langs:
        c = load_wikiann(lang, "test", wikiann_dir)
        _check_real_corpus(c, lang, "test")
        if lang in table:
            assert len(c) == table[lang]["test"], lang
    elapsed = time.perf_counter() - t0
    print(f"\n46-language test splits: {elapsed:.2f} s")


@pytest.mark.data
@pytest.mark.parametrize("lang", sorted(PINNED_SIZES))
def test_real_all_splits_pinned_languages(wikiann_dir: Path, lang: str):
    sizes = split_sizes(lang, wikiann_dir)
    assert sizes == PINNED_SIZES[lang]
    table = _source_table(wikiann_dir)
    if table:
        assert sizes == table[lang]
    for split in sizes:
        _check_real_corpus(load_wikiann(lang, split, wikiann_dir), lang, split)


@pytest.mark.data
def test_real_both_line_formats(wikiann_dir: Path):
    br = load_wikiann("br", "train", wikiann_dir)
    es = load_wikiann("es", "dev", wikiann_dir)
    assert dict(br.meta)["format"] == "prefixed" and dict(es.meta)["format"] == "plain"
    assert br[0].tokens[0] == "''Leopardus"  # file line: "br:''Leopardus\tO"
    # unprefixed files keep tokens that contain ':' (es has a bare ":" token in dev)
    assert any(":" in t for s in es for t in s.tokens)


@pytest.mark.data
def test_real_es_train_loads_and_is_cached(wikiann_dir: Path):
    # Loading speed is measured by benchmarks/bench_core.py, not asserted here.
    C.clear_cache()
    c = load_wikiann("es", "train", wikiann_dir)
    assert load_wikiann("es", "train", wikiann_dir) is c  # the second call is served from the cache
    assert len(c) == 20000


@pytest.mark.data
def test_real_ja_zh_repaired(wikiann_dir: Path):
    for lang in ("ja", "zh"):
        c = load_wikiann(lang, "test", wikiann_dir)
        assert int(dict(c.meta)["repaired_iob2"]) > 0
        assert all(s.valid for s in c)


@pytest.mark.data
def test_real_paper_resplit_matches_reference_sizes(wikiann_dir: Path):
    tr, te = paper_resplit("ca", wikiann_dir)
    assert (len(tr), len(te)) == (13602, 3401)  # the reference study's 17,003-sentence cap, 80/20
    assert paper_resplit("ca", wikiann_dir) == (tr, te)
    keys_tr = {(s.tokens, s.tags) for s in tr}
    assert not keys_tr & {(s.tokens, s.tags) for s in te}
    # br has fewer unique sentences than the cap: all of them are used
    btr, bte = paper_resplit("br", wikiann_dir)
    assert len(btr) + len(bte) == int(dict(btr.meta)["pooled_unique"]) < 17003


@pytest.mark.data
@pytest.mark.slow
def test_real_every_split_of_every_language(wikiann_dir: Path):
    table = _source_table(wikiann_dir)
    for lang in available_languages(wikiann_dir):
        sizes = split_sizes(lang, wikiann_dir)
        if lang in table:
            assert sizes == table[lang], lang
        for split in sizes:
            _check_real_corpus(load_wikiann(lang, split, wikiann_dir), lang, split)
        C.clear_cache()  # keep memory flat
