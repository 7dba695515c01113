"""Tests for xner_core.corpus.languages: the language table, the 13 reference pairs and pair parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from xner_core.corpus import languages as L
from xner_core.errors import ConfigError, DataError

WIKIANN_46 = ("af an ar ast az be bn br ca cy de el en es et eu fa fi fr gl he hi id it ja jv kk ku mr ms ne nl oc "
              "ps pt ru scn sco sk sw ta tg tr uk ur zh").split()

# The study's pairs in its order (docs/paper-spec.md §1) with the primary relation chosen for each.
REFERENCE = [
    ("fr", "br", "geographic"), ("ar", "fa", "borrowing"), ("ar", "hi", "control"), ("en", "sco", "genetic"),
    ("en", "cy", "geographic"), ("es", "ca", "genetic"), ("cs", "sk", "genetic"), ("id", "ms", "genetic"),
    ("fr", "oc", "genetic"), ("nl", "af", "genetic"), ("it", "scn", "genetic"), ("es", "an", "genetic"),
    ("es", "ast", "genetic"),
]

# ISO 15924 codes a WikiANN language can reasonably have; a typo such as "Latin" or "latn" must fail.
ISO15924 = {"Latn", "Arab", "Deva", "Cyrl", "Hani", "Jpan", "Grek", "Hebr", "Beng", "Taml", "Armn", "Geor", "Thai"}


_CACHES = ("_languages", "reference_pairs", "_wikiann_rows", "_library_language", "_subtag_index")


@pytest.fixture
def fresh_tables():
    """Clear the read-once caches before and after a test that swaps the data folder."""
    for name in _CACHES:
        getattr(L, name).cache_clear()
    yield
    for name in _CACHES:
        getattr(L, name).cache_clear()


def test_table_covers_wikiann_pool_plus_cs():
    assert sorted(L.language_codes()) == sorted(WIKIANN_46 + ["cs"])
    assert len(L.all_languages()) == 47
    assert [lang.code for lang in L.all_languages()] == list(L.language_codes())


@pytest.mark.parametrize(
    "code, name, iso, family, genus, script",
    [
        ("es", "Spanish", "spa", "Indo-European", "Romance", "Latn"),
        ("br", "Breton", "bre", "Indo-European", "Celtic", "Latn"),
        ("fa", "Persian", "fas", "Indo-European", "Iranian", "Arab"),
        ("hi", "Hindi", "hin", "Indo-European", "Indo-Aryan", "Deva"),
        ("ar", "Arabic", "ara", "Afro-Asiatic", "Semitic", "Arab"),
        ("ms", "Malay", "msa", "Austronesian", "Malayo-Polynesian", "Latn"),
        ("sco", "Scots", "sco", "Indo-European", "Germanic", "Latn"),
        ("scn", "Sicilian", "scn", "Indo-European", "Romance", "Latn"),
        ("ast", "Asturian", "ast", "Indo-European", "Romance", "Latn"),
        ("an", "Aragonese", "arg", "Indo-European", "Romance", "Latn"),
        ("cs", "Czech", "ces", "Indo-European", "Slavic", "Latn"),
        ("sk", "Slovak", "slk", "Indo-European", "Slavic", "Latn"),
        ("ru", "Russian", "rus", "Indo-European", "Slavic", "Cyrl"),
        ("el", "Greek", "ell", "Indo-European", "Hellenic", "Grek"),
        ("he", "Hebrew", "heb", "Afro-Asiatic", "Semitic", "Hebr"),
        ("ta", "Tamil", "tam", "Dravidian", "Southern Dravidian", "Taml"),
        ("bn", "Bengali", "ben", "Indo-European", "Indo-Aryan", "Beng"),
        ("ja", "Japanese", "jpn", "Japonic", "Japanese", "Jpan"),
        ("zh", "Chinese", "zho", "Sino-Tibetan", "Sinitic", "Hani"),
        ("eu", "Basque", "eus", "Basque", "Basque", "Latn"),
        ("fi", "Finnish", "fin", "Uralic", "Finnic", "Latn"),
        ("kk", "Kazakh", "kaz", "Turkic", "Kipchak", "Cyrl"),
    ],
)
def test_language_rows(code, name, iso, family, genus, script):
    lang = L.get_language(code)
    assert (lang.code, lang.name, lang.iso639_3, lang.family, lang.genus, lang.script) == (
        code, name, iso, family, genus, script)
    assert L.iso3(code) == iso


def test_every_row_is_well_formed():
    isos = [lang.iso639_3 for lang in L.all_languages()]
    assert len(set(isos)) == len(isos), "two languages share an ISO 639-3 code"
    for lang in L.all_languages():
        assert lang.script in ISO15924, lang
        assert lang.family and lang.genus and lang.name, lang
        assert len(lang.iso639_3) == 3 and lang.iso639_3.isalpha() and lang.iso639_3.islower(), lang


def test_resource_is_the_documented_train_size_tier():
    for lang in L.all_languages():
        if lang.wikiann_train is None:
            assert lang.code == "cs"  # the only language without local data
            continue
        expected = "high" if lang.wikiann_train >= L.HIGH_RESOURCE_MIN_TRAIN else "low"
        assert lang.resource == expected, lang
    # every target of the study that is small in WikiANN is "low"
    for code in ("br", "sco", "cy", "oc", "af", "scn", "an", "ast", "hi"):
        assert L.get_language(code).resource == "low"


def test_get_language_normalises_case_and_space():
    assert L.get_language(" ES ") is L.get_language("es")


@pytest.mark.parametrize("bad, hint", [("xx", None), ("", None), ("zz", None), ("spa", "'es' (Spanish)"),
                                       ("e s", "'es' (Spanish)"), ("zh_yue", "'zh-yue' (Cantonese)"),
                                       ("yue", "'zh-yue' (Cantonese)"), ("Bavarian", "'bar' (Bavarian)"),
                                       ("gsw", "'als' (Alemannic)"), ("srp", "'sr' (Serbian)")])
def test_unknown_language_message_lists_choices(bad, hint):
    with pytest.raises(ConfigError) as err:
        L.get_language(bad)
    msg = str(err.value)
    if hint is None:  # the table's codes first (what the CLI and grid messages have always started with)
        assert msg.startswith(f"unknown language {bad!r}; choose one of: af, an, ar, ast,")
    else:
        assert msg.startswith(f"unknown language {bad!r}; did you mean {hint}? choose one of: af, an, ar, ast,")
    assert "sco" in msg and "zh" in msg
    assert "or another of WikiANN's 176 languages: ace, als, am, ang," in msg and "zh-yue" in msg
    assert "<code>/<split>.gz" in msg  # where a language outside WikiANN goes
    with pytest.raises(ConfigError):
        L.iso3(bad)


def test_reference_pairs_exact_and_ordered():
    pairs = L.reference_pairs()
    assert [(p.source, p.target, p.relation) for p in pairs] == REFERENCE
    assert all(p.relation in L.RELATIONS for p in pairs)
    assert pairs[0].key == "fr-br" and pairs[0].label == "fr→br"
    assert all(p.note for p in pairs)


def test_reference_languages_are_the_21():
    codes = L.reference_languages()
    assert len(codes) == 21
    assert set(codes) == set("fr br ar fa hi en sco cy es ca cs sk id ms oc nl af it scn an ast".split())
    assert codes[:4] == ("fr", "br", "ar", "fa")


@pytest.mark.parametrize("text", ["fr-br", "fr→br", "fr,br", "fr->br", "fr > br", " FR - BR ", "fr br", "fr , br"])
def test_parse_pair_accepts_separators(text):
    pair = L.parse_pair(text)
    assert pair == L.reference_pairs()[0]
    assert pair.relation == "geographic"


def test_parse_pair_outside_the_study():
    pair = L.parse_pair("de-nl")
    assert (pair.source, pair.target, pair.relation, pair.note) == ("de", "nl", L.OTHER_RELATION, "")
    # the native setting is a pair of one language with itself
    assert L.parse_pair("br-br").target == "br"
    # the reverse of a study pair is not the study pair
    assert L.parse_pair("br-fr").relation == L.OTHER_RELATION


@pytest.mark.parametrize("bad", ["fr", "", "fr-br-oc", "fr--", "->br"])
def test_parse_pair_rejects_malformed(bad):
    with pytest.raises(ConfigError, match="cannot read language pair"):
        L.parse_pair(bad)


def test_parse_pair_rejects_unknown_code():
    with pytest.raises(ConfigError, match="unknown language 'xx'"):
        L.parse_pair("fr-xx")


def _write_tables(folder: Path, languages: str, pairs: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "languages.csv").write_text(languages, encoding="utf-8")
    (folder / "pairs.csv").write_text(pairs, encoding="utf-8")


_HEADER = "code,name,iso639_3,family,genus,script,resource,wikiann_train,note\n"
_GOOD_ROWS = "es,Spanish,spa,Indo-European,Romance,Latn,high,20000,\nca,Catalan,cat,Indo-European,Romance,Latn,high,,\n"
_PAIRS = "order,source,target,relation,note\n1,es,ca,genetic,x\n"


def test_tables_are_read_from_repo_data_dir(tmp_path, monkeypatch, fresh_tables):
    _write_tables(tmp_path, _HEADER + _GOOD_ROWS, _PAIRS)
    monkeypatch.setattr(L, "repo_data_dir", lambda: tmp_path)
    assert L.language_codes() == ("es", "ca")
    assert L.get_language("ca").wikiann_train is None
    assert L.reference_pairs() == (L.LanguagePair("es", "ca", "genetic", "x"),)


@pytest.mark.parametrize(
    "languages, pairs, message",
    [
        (_HEADER + _GOOD_ROWS + "xx,X,xxx,F,G,latin,low,1,\n", _PAIRS, r"line 4: script 'latin'"),
        (_HEADER + _GOOD_ROWS + "xx,X,xxx,F,G,Latn,medium,1,\n", _PAIRS, r"line 4: resource 'medium'; choose one of"),
        (_HEADER + _GOOD_ROWS + "xx,X,XX,F,G,Latn,low,1,\n", _PAIRS, r"line 4: iso639_3 'XX'"),
        (_HEADER + _GOOD_ROWS + "xx,X,xxx,F,G,Latn,low,many,\n", _PAIRS, r"line 4: wikiann_train 'many'"),
        (_HEADER + _GOOD_ROWS + "es,Spanish,spa,I,R,Latn,high,1,\n", _PAIRS, r"line 4: language 'es' appears twice"),
        ("code,name\nes,Spanish\n", _PAIRS, r"line 1: header"),
        (_HEADER + _GOOD_ROWS, "order,source,target,relation,note\n1,es,ca,cousins,\n", r"relation 'cousins'"),
        (_HEADER + _GOOD_ROWS, "order,source,target,relation,note\n1,es,zz,genetic,\n", r"target 'zz' is not in"),
    ],
)
def test_bad_tables_raise_dataerror_with_line(tmp_path, monkeypatch, fresh_tables, languages, pairs, message):
    _write_tables(tmp_path, languages, pairs)
    monkeypatch.setattr(L, "repo_data_dir", lambda: tmp_path)
    with pytest.raises(DataError, match=message):
        L.language_codes()
        L.reference_pairs()


def test_missing_table_is_a_dataerror(tmp_path, monkeypatch, fresh_tables):
    monkeypatch.setattr(L, "repo_data_dir", lambda: tmp_path)
    with pytest.raises(DataError, match="languages.csv is missing"):
        L.all_languages()


@pytest.mark.data
def test_table_matches_local_wikiann(wikiann_dir):
    from xner_core.corpus.wikiann import available_languages, load_wikiann

    local = available_languages(wikiann_dir)
    assert sorted(local) == sorted(WIKIANN_46)
    # train sizes of the small splits (cheap to load) match the table exactly
    for lang in L.all_languages():
        if lang.wikiann_train is not None and lang.wikiann_train <= 1000:
            assert len(load_wikiann(lang.code, "train", wikiann_dir)) == lang.wikiann_train, lang.code


# ------------------------------------------------------------------------------------ any WikiANN language


def test_wikiann_codes_are_the_hubs_176():
    codes = L.wikiann_codes()
    assert len(codes) == 176 == len(set(codes)) and list(codes) == sorted(codes)
    assert {"ace", "bar", "zh-yue", "be-x-old", "zh-min-nan", "map-bms", "simple"} <= set(codes)
    assert set(L.language_codes()) <= set(codes)  # every row of the table is a WikiANN language (cs included)
    text = (L.repo_data_dir() / L.WIKIANN_TABLE).read_text(encoding="utf-8")
    assert "huggingface/datasets" in text and "020ee3494e50792456dc4a1df9b7f274873296de" in text  # its source
    assert L.on_hub("bar") and L.on_hub("cs") and not L.on_hub("xx")


@pytest.mark.parametrize("code, name, iso, script", [
    ("bar", "Bavarian", "bar", "Latn"),
    ("ace", "Acehnese", "ace", "Latn"),
    ("zh-yue", "Cantonese", "yue", "Hant"),
    ("zh-min-nan", "Min Nan Chinese", "nan", "Latn"),  # Pe̍h-ōe-jī: the library's guess (Hans) corrected
    ("be-x-old", "Belarusian (Taraškievica)", "bel", "Cyrl"),
    ("als", "Alemannic", "gsw", "Latn"),  # a Wikipedia code: not Tosk Albanian
    ("sh", "Serbo-Croatian", "hbs", "Latn"),
    ("simple", "Simple English", "eng", "Latn"),
    ("tl", "Tagalog", "tgl", "Latn"),
    ("arc", "Aramaic", "arc", "Syrc"),
    ("ka", "Georgian", "kat", "Geor"),
    ("am", "Amharic", "amh", "Ethi"),
])
def test_wikiann_languages_outside_the_table(code, name, iso, script):
    lang = L.get_language(code)
    assert (lang.code, lang.name, lang.iso639_3, lang.script) == (code, name, iso, script)
    assert (lang.family, lang.genus, lang.resource, lang.wikiann_train) == ("", "", "", None)
    assert L.get_language(f" {code.upper()} ") is lang and L.iso3(code) == iso


def test_known_languages_cover_table_wikiann_and_local_data(tmp_path):
    (tmp_path / "qqx").mkdir()
    (tmp_path / "qqx" / "test.gz").write_bytes(b"")
    (tmp_path / "nodata").mkdir()  # a folder without a split is not a language
    known = {lang.code: lang for lang in L.known_languages(tmp_path)}
    assert len(known) == 177 and "qqx" in known and "nodata" not in known
    assert known["es"] is L.get_language("es")  # the table's rows as they are
    assert known["qqx"].name == "qqx" and known["qqx"].script == L.UNKNOWN_SCRIPT and known["qqx"].iso639_3 == "qqx"
    assert L.get_language("qqx", tmp_path).note.startswith("local data only")
    with pytest.raises(ConfigError, match="unknown language 'qqx'"):
        L.get_language("qqx")  # not under the default data directory
    assert L.local_codes(tmp_path) == ("qqx",)


@pytest.mark.parametrize("text, pair", [
    ("es-zh-yue", ("es", "zh-yue")), ("zh-yue-es", ("zh-yue", "es")), ("es → be-x-old", ("es", "be-x-old")),
    ("be-x-old,be", ("be-x-old", "be")), ("de bar", ("de", "bar")), ("zh-min-nan->zh", ("zh-min-nan", "zh")),
    ("fr-br", ("fr", "br")),
])
def test_pairs_of_codes_with_hyphens(text, pair):
    assert L.split_pair(text) == pair
    parsed = L.parse_pair(text)
    assert (parsed.source, parsed.target) == pair and L.parse_pair(parsed.key) == parsed


def test_data_hint_says_where_and_whether_the_hub_has_it(tmp_path):
    hint = L.data_hint("bar", tmp_path)
    assert f"{tmp_path}/bar/{{train,dev,test}}.gz" in hint and "unimelb-nlp/wikiann) has 'bar'" in hint
    assert "does not have 'qqx'" in L.data_hint("qqx", tmp_path)


def test_uriel_distances_of_wikiann_languages_outside_the_table(tmp_path, monkeypatch):
    pytest.importorskip("urielplus")
    from xner_core.features import distance as D

    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path))
    got = D.uriel_distances("de", "bar")
    assert got["genetic"] is not None and got["geographic"] is not None and got == D.uriel_distances("bar", "de")
    assert D.uriel_family("bar") == "Indo-European" and D.uriel_family("yue") == "Sino-Tibetan"
    div = D.source_diversity(["es", "bar", "zh-yue"])
    assert (div.families, div.scripts) == (2, 2)  # Indo-European (table and URIEL+), Sino-Tibetan; Latn, Hant
    (tmp_path / "qqx").mkdir()
    (tmp_path / "qqx" / "test.gz").write_bytes(b"")
    monkeypatch.setenv("XNER_DATA_DIR", str(tmp_path))
    assert set(D.uriel_distances("es", "qqx").values()) == {None}  # URIEL+ does not know it: no distances


def test_cli_lists_every_wikiann_language_and_accepts_them(capsys, tmp_path):
    import json

    from xner_core.cli.main import main

    assert main(["data", "languages", "--all", "--json", "--data-dir", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 176 and not any(r["local"] for r in rows)
    bar = next(r for r in rows if r["code"] == "bar")
    assert (bar["name"], bar["hub"], bar["local"]) == ("Bavarian", True, False)
    assert main(["data", "stats", "bar", "--data-dir", str(tmp_path)]) != 0  # a known language without data
    err = capsys.readouterr().err
    assert f"{tmp_path}/bar/{{train,dev,test}}.gz" in err and "has 'bar'" in err and "unknown language" not in err
