"""AppTest of the shared sidebar: any two WikiANN languages can be the pair (from the URL or "Another pair")."""

from __future__ import annotations

from apptest_helpers import assert_clean_run, open_page, widget_value

PAGE = "pages/pair_explorer.py"


def test_a_url_pair_of_any_two_wikiann_languages_is_offered(no_data):
    at = open_page(PAGE, {"source": "de", "target": "bar"})
    assert_clean_run(at)
    assert widget_value(at, "qp_pair") == "de→bar"
    assert at.title[0].value.startswith("German → Bavarian")


def test_an_unknown_url_language_falls_back_to_the_default_pair(no_data):
    at = open_page(PAGE, {"source": "de", "target": "qqq"})
    assert_clean_run(at)
    assert widget_value(at, "qp_pair") == "fr→br"
