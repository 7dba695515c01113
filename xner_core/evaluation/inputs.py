"""Stage 5b, evaluation: the data an evaluation reads besides the model, built in ONE place.

`training_data` loads and caps what a setting trains on. `evaluation_inputs` builds what an evaluation of a model
config reads: the seen corpus, the test set, the donor corpus of name swaps and the perturbation context, under
one `EvalOptions`. The evaluation (`evaluate.iter_evaluate`), `xner perturb`, and the dashboard's pair explorer,
sentence lab and upload page all call it, so the sentences a page shows perturbed are the ones the evaluation
scores (`perturb_test` / `perturb_one` apply the options' seed and rate).

Data protocol: `wikiann-rahimi` uses the balanced train/dev/test splits (train capped at
`max_train_sentences`, dev at `max_dev_sentences`); `paper-resplit` pools a language's labeled sentences and
splits them 80/20 the way the reference study did (no dev set: no model selection).

The "seen" corpus a perturbation is relative to is what the model was trained on: the target's train set for
native models, the (capped) source train sets for every other setting. Entity/word overlap features are
computed against the same corpus, so the x-axes of the plots describe what the model actually saw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Sequence

from xner_core.corpus.resplit import paper_resplit
from xner_core.corpus.sentences import Corpus, Sentence
from xner_core.corpus.wikiann import load_wikiann, wikiann_file
from xner_core.evaluation.jobs import CLEAN, EvalOptions
from xner_core.evaluation.memo import CONTEXTS, PERTURBED, SEEN, lazy_word_embedder
from xner_core.runs.config import ExperimentConfig, canonical_sources

if TYPE_CHECKING:
    from xner_core.perturb.context import PerturbContext
    from xner_core.perturb.records import PerturbResult


@dataclass(frozen=True)
class TrainingData:
    """Everything a setting may train on, already capped."""

    source_train: tuple[tuple[str, tuple[Sentence, ...]], ...]
    source_dev: tuple[tuple[str, tuple[Sentence, ...]], ...]
    target_train: tuple[Sentence, ...]
    target_dev: tuple[Sentence, ...]
    target_unlabeled: tuple[Sentence, ...]

    def seen(self, lang: str) -> Corpus:
        """The corpus the model was trained on (labeled), as one Corpus for overlap and perturbation context."""
        sents = self.target_train if not self.source_train else tuple(
            s for _, group in self.source_train for s in group)
        return Corpus(sents, lang, "train")


# ---------------------------------------------------------------------------------------------------------------
# data


def _cap(corpus: Corpus, n: int | None) -> tuple[Sentence, ...]:
    return corpus.head(n).sentences


def training_data(config: ExperimentConfig, data_dir: str | os.PathLike[str] | None = None) -> TrainingData:
    """Load and cap the data the config's setting trains on.

    Args:
        config: the experiment config.
        data_dir: the WikiANN directory (default XNER_DATA_DIR).

    Returns:
        Capped source/target sets; source languages in the config's canonical order.
    """
    opts = config.options
    cap, dev_cap = opts.max_train_sentences, opts.max_dev_sentences
    resplit = config.data == "paper-resplit"

    def train_of(lang: str) -> tuple[Sentence, ...]:
        if resplit:
            return _cap(paper_resplit(lang, data_dir, seed=1)[0], cap)
        return _cap(load_wikiann(lang, "train", data_dir), cap)

    def dev_of(lang: str) -> tuple[Sentence, ...]:
        return () if resplit else _cap(load_wikiann(lang, "dev", data_dir), dev_cap)

    sources = canonical_sources(config)
    target_train: tuple[Sentence, ...] = ()
    target_dev: tuple[Sentence, ...] = ()
    unlabeled: tuple[Sentence, ...] = ()
    if config.setting == "native":
        target_train, target_dev = train_of(config.target), dev_of(config.target)
    if config.setting in ("distill", "tapt"):
        unlabeled = unlabeled_target(config.target, opts.distill_unlabeled, cap, data_dir, data=config.data)
    return TrainingData(
        source_train=tuple((lang, train_of(lang)) for lang in sources),
        source_dev=tuple((lang, dev_of(lang)) for lang in sources),
        target_train=target_train, target_dev=target_dev, target_unlabeled=unlabeled,
    )


def unlabeled_target(lang: str, which: str, cap: int | None,
                     data_dir: str | os.PathLike[str] | None = None,
                     data: str = "wikiann-rahimi") -> tuple[Sentence, ...]:
    """Target text with its labels dropped (distillation students, TAPT), capped at `cap` sentences in all.

    Args:
        lang: the target language.
        which: "train" (Wu et al.: the target's train split), "extra" (text outside every split; the train
            split where there is none) or "train+extra" (both, train first).
        cap: most sentences (None: all).
        data_dir: the WikiANN directory.
        data: the data protocol. Under `paper-resplit` the train split is the re-split's 80 % and "extra" is
            what the re-split pooled but left out (beyond its cap): WikiANN's own train and extra splits are
            pooled into the re-split, so reading them would show the student sentences of the re-split's test set.

    Returns:
        Sentences with every tag "O".
    """
    def extra_text() -> tuple[Sentence, ...]:
        if data == "paper-resplit":
            # By tokens: the pool is deduplicated on (tokens, tags), so the same text may sit in it twice.
            kept = {s.tokens for part in paper_resplit(lang, data_dir, seed=1) for s in part}
            pooled = paper_resplit(lang, data_dir, cap=None, seed=1)  # the whole deduplicated pool, in two parts
            left = tuple(s for part in pooled for s in part if s.tokens not in kept)
        else:
            left = load_wikiann(lang, "extra", data_dir).sentences if wikiann_file(lang, "extra", data_dir) else ()
        return left

    train = (paper_resplit(lang, data_dir, seed=1)[0] if data == "paper-resplit"
             else load_wikiann(lang, "train", data_dir)).sentences
    if which == "train":
        chosen = train
    else:
        extra = extra_text()
        chosen = (train + extra) if which == "train+extra" else (extra or train)
    chosen = chosen if cap is None else chosen[:cap]
    return tuple(s.replace(tags=("O",) * len(s)) for s in chosen)


def test_corpus(config: ExperimentConfig, limit: int | None = None,
                data_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """The target test set of the config's data protocol, capped at `limit` sentences."""
    if config.data == "paper-resplit":
        return paper_resplit(config.target, data_dir, seed=1)[1].head(limit)
    return load_wikiann(config.target, "test", data_dir, limit=limit)


def donor_corpus(lang: str, data_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """Names for person/location swaps: the donor language's `extra` split (outside every train/test split)
    when present, else its dev split."""
    split = "extra" if wikiann_file(lang, "extra", data_dir) is not None else "dev"
    return load_wikiann(lang, split, data_dir)


def _data_key(data_dir: str | os.PathLike[str] | None) -> str:
    from xner_core.paths import data_dir as resolve_data_dir

    return str(resolve_data_dir(data_dir).expanduser().absolute())


def _seen_key(config: ExperimentConfig, data_dir: str | os.PathLike[str] | None) -> tuple[Any, ...]:
    # What `TrainingData.seen` depends on: the training languages, their cap and the data protocol (the target
    # is kept because the seen Corpus is labeled with it, and the test set differs per target anyway).
    langs = canonical_sources(config) or (config.target,)
    return ("seen", _data_key(data_dir), config.data, config.setting == "native", langs,
            config.options.max_train_sentences, config.target)


def _test_key(config: ExperimentConfig, limit: int | None, data_dir: str | os.PathLike[str] | None) -> tuple[Any, ...]:
    return ("test", _data_key(data_dir), config.data, config.target, limit)


def seen_corpus(config: ExperimentConfig, data_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """The labeled corpus the config's model was trained on (cached in-process; see the module docstring).

    Args:
        config: the experiment config.
        data_dir: WikiANN directory.

    Returns:
        The target's train set for native models, the capped source train sets otherwise.
    """
    return SEEN.get(_seen_key(config, data_dir), lambda: training_data(config, data_dir).seen(config.target))


# ---------------------------------------------------------------------------------------------------------------
# the one builder of evaluation inputs


class EvalInputs:
    """What an evaluation of one model config reads besides the model (from `evaluation_inputs`).

    Each part is built on first use and kept, so a caller pays only for what it reads (an evaluation of the
    clean test set alone never loads a donor or builds a context).

    Attributes:
        config: the model's config (its target is the evaluated language).
        options: the evaluation options (test cap, donor, encoder, perturbation seed and rate).
        seen: the corpus the model was trained on (`seen_corpus`).
        test: the test set capped at `options.test_limit`, or the text the caller gave instead.
        donor: the donor corpus of name swaps (`donor_corpus(options.donor_for(target))`), None when no served
            perturbation swaps names.
        context: the perturbation context (seen corpus, test set as the replacement pool, donor, the lazy word
            embedder of `options.embed_model`, stopwords of `lang`).
        key: the in-process cache key of (seen corpus, test set), None for text the caller gave.
    """

    def __init__(self, config: ExperimentConfig, options: EvalOptions, needs: frozenset[str], *,
                 data_dir: str | os.PathLike[str] | None, cache: str | os.PathLike[str] | None,
                 text: Corpus | None, lang: str | None) -> None:
        self.config = config
        self.options = options
        self.needs = needs
        self.data_dir = data_dir
        self.cache = cache
        self.lang = lang or config.target
        self._text = text
        self.donor_lang = options.donor_for(config.target) if "donor" in needs else None

    @property
    def key(self) -> tuple[Any, ...] | None:
        if self._text is not None:
            return None
        return (_seen_key(self.config, self.data_dir), _test_key(self.config, self.options.test_limit, self.data_dir))

    @property
    def context_key(self) -> tuple[Any, ...] | None:
        """`key` plus what else the perturbation context depends on (donor, encoder, stopword language); None for
        a caller's text."""
        key = self.key
        return None if key is None else (*key, self.donor_lang, self.options.embed_model, self.lang)

    @cached_property
    def seen(self) -> Corpus:
        return seen_corpus(self.config, self.data_dir)

    @cached_property
    def test(self) -> Corpus:
        if self._text is not None:
            return self._text
        return test_corpus(self.config, self.options.test_limit, self.data_dir)

    @cached_property
    def donor(self) -> Corpus | None:
        return donor_corpus(self.donor_lang, self.data_dir) if self.donor_lang else None

    @cached_property
    def context(self) -> "PerturbContext":
        from xner_core.perturb.context import build_context

        # The evaluation's own test set always comes with the seen corpus; text a caller gives (an uploaded file)
        # gets it only when a perturbation reads it, so source-free perturbations run without the source's data.
        with_seen = self._text is None or "source" in self.needs

        def make() -> "PerturbContext":
            return build_context(self.seen if with_seen else None, self.test, donor=self.donor,
                                 embed=lazy_word_embedder(self.options.embed_model, self.cache), lang=self.lang)

        key = self.context_key
        return make() if key is None else CONTEXTS.get(key, make)


def evaluation_inputs(config: ExperimentConfig, options: EvalOptions = EvalOptions(),
                      perturbations: Sequence[str] = (), *, data_dir: str | os.PathLike[str] | None = None,
                      cache: str | os.PathLike[str] | None = None, text: Corpus | None = None,
                      lang: str | None = None) -> EvalInputs:
    """The inputs of evaluating `config` under `options` and these perturbations (see `EvalInputs`).

    Args:
        config: the model's config: its setting, sources, training cap and data protocol fix the seen corpus;
            its target the test set and the default donor.
        options: the evaluation options.
        perturbations: the perturbations the inputs serve (registry names; "clean" is ignored): the donor is
            loaded only when one of them swaps names.
        data_dir: WikiANN directory.
        cache: xner cache root (the word embedder's).
        text: sentences to perturb instead of the test set (a user's file or sentence); they are also the
            replacement pool of the context.
        lang: language of the context's stopwords (default: the target).

    Returns:
        An EvalInputs; its parts are built on first use.
    """
    from xner_core.perturb.registry import get_perturbation

    needs = frozenset(part for name in perturbations if name != CLEAN for part in get_perturbation(name).needs)
    return EvalInputs(config, options, needs, data_dir=data_dir, cache=cache, text=text, lang=lang)


def perturb_test(inputs: EvalInputs, name: str) -> "PerturbResult":
    """The test set (or the caller's text) under perturbation `name`, with the options' seed and rate.

    Cached in-process per (seen corpus, test set, donor, encoder, stopword language, perturbation, seed, rate)
    when the inputs are the evaluation's own test set.
    """
    from xner_core.perturb.apply import perturb_corpus

    seed, rate = inputs.options.perturb_seed, inputs.options.rate_for(name)

    def make() -> "PerturbResult":
        return perturb_corpus(name, inputs.test, inputs.context, seed=seed, rate=rate)

    key = inputs.context_key
    return make() if key is None else PERTURBED.get((key, name, seed, float(rate)), make)


def perturb_one(inputs: EvalInputs, name: str, sentence: Sentence, index: int = 0) -> "PerturbResult":
    """One sentence under perturbation `name` in the inputs' context, with the options' seed and rate.

    For row `index` of `inputs.test` this equals that row of `perturb_test(inputs, name)`.
    """
    from xner_core.perturb.apply import perturb_sentence

    return perturb_sentence(name, sentence, inputs.context, seed=inputs.options.perturb_seed,
                            rate=inputs.options.rate_for(name), index=index)
