"""Benchmark for stage 4, predict: our `predict_tags` vs the Hugging Face token-classification pipeline.

Same fine-tuned model, same N WikiANN test sentences (`XNER_DATA_DIR`, default lang es). The pipeline gets
`" ".join(tokens)` and returns entity groups with character offsets, which are mapped back to word-level IOB2
tags so both sides are scored alike (seqeval strict IOB2 entity F1 against the gold tags).

Ours runs in fp32, under bf16 autocast and on the onnx-int8 backend; the pipeline runs with the model in fp32 and
in bf16 (its dtypes on a CPU), and its faster one is the baseline. The headline ratio is our FASTEST backend whose
F1 stays within 0.5 of our fp32 F1 against that baseline. The model must have a fine-tuned head: `--model auto`
takes the cached e5-small transfer model of `--lang` and, when there is none, first trains one (e5-small, the
first 2000 train sentences, 1 epoch; it says so) - F1 columns of a random head would mean nothing.

Usage:
    python benchmarks/bench_inference.py [--model DIR|e5-small|tiny] [--lang es] [--n 2000] [--threads 2]

The LAST line printed is `ratio=<ours/pipeline> ratio_int8=<int8/pipeline> ...` followed by the other figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def word_char_spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """Character [start, end) of each word in `" ".join(words)`."""
    out, pos = [], 0
    for w in words:
        out.append((pos, pos + len(w)))
        pos += len(w) + 1
    return out


def groups_to_tags(words: Sequence[str], groups: Sequence[dict[str, Any]]) -> list[str]:
    """Map the pipeline's entity groups (char offsets into the joined text) to word-level IOB2 tags.

    A word belongs to a group when their character ranges overlap; the group's first word gets B-, the rest I-.
    """
    tags = ["O"] * len(words)
    spans = word_char_spans(words)
    for g in groups:
        etype = g["entity_group"]
        hit = [i for i, (s, e) in enumerate(spans) if s < g["end"] and g["start"] < e and tags[i] == "O"]
        for k, i in enumerate(hit):
            tags[i] = ("B-" if k == 0 else "I-") + etype
    return tags


def f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    """Entity F1 in percent, seqeval strict IOB2."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    return 100.0 * f1_score(gold, pred, mode="strict", scheme=IOB2)


def load_model(name: str) -> tuple[Any, Any, bool]:
    """Return (model, tokenizer, has_trained_head). A directory with an IOB2 id2label counts as fine-tuned."""
    from xner_core.models.registry import load_token_classifier

    path = Path(name)
    trained = False
    if (path / "config.json").is_file():
        conf = json.loads((path / "config.json").read_text(encoding="utf-8"))
        labels = list((conf.get("id2label") or {}).values())
        trained = "O" in labels and any(str(x).startswith("B-") for x in labels)
    model, tok = load_token_classifier(name)
    return model.eval(), tok, trained


def resolve_model(name: str, lang: str) -> str:
    """`auto` -> the directory of the cached fine-tuned e5-small transfer model of `lang` (trained first when the
    cache has none)."""
    if name != "auto":
        return name
    from xner_core.evaluation.modelstore import find_cached, model_cache, train_model
    from xner_core.runs.config import make_config

    found = find_cached("e5-small", "transfer", lang, lang)
    if not found:
        other = "ca" if lang != "ca" else "es"
        config = make_config("e5-small", other, "transfer", sources=(lang,), max_train_sentences=2000,
                             max_dev_sentences=0)
        print(f"NOTE: no cached fine-tuned e5-small trained on {lang}; training one first (2000 sentences, 1 epoch; "
              f"not timed) so that the F1 columns mean something", flush=True)
        train_model(config)
        found = [(config, {})]
    path = model_cache().path(found[0][0])
    print(f"model: {path} (cached e5-small transfer model trained on {lang})")
    return str(path)


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="auto",
                    help="a fine-tuned model directory (e.g. a cache entry <cache>/models/<hash>), e5-small (random "
                         "head), tiny, or auto: the cached e5-small transfer model trained on --lang (as `xner grid "
                         "run paper` leaves it), else e5-small with a random head")
    ap.add_argument("--lang", default="es", help="WikiANN language of the test sentences")
    ap.add_argument("--n", type=int, default=2000, help="number of test sentences")
    ap.add_argument("--data-dir", default=None, help="WikiANN directory (default XNER_DATA_DIR)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch/ORT threads (default: torch's)")
    ap.add_argument("--no-pipeline", action="store_true", help="skip the HF pipeline")
    ap.add_argument("--no-onnx", action="store_true", help="skip the onnx-int8 backend")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved timed runs per method; the best counts")
    args = ap.parse_args(argv)

    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from xner_core.corpus.wikiann import load_wikiann
    from xner_core.inference.onnx import load_onnx_int8
    from xner_core.inference.predict import predict_tags

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message="Tokenizer does not support real words")  # the pipeline's, per call
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_wikiann(args.lang, "test", args.data_dir, limit=args.n)
    words = corpus.tokens
    gold = corpus.tags
    model, tok, trained = load_model(resolve_model(args.model, args.lang))
    n = len(words)
    print(f"model={args.model} trained_head={trained} lang={args.lang} n={n} threads={torch.get_num_threads()} "
          f"batch={args.batch_size} repeat={args.repeat}")

    # name -> function of the word lists returning word-level tags
    runners: dict[str, Any] = {
        "ours": lambda ws: predict_tags(model, tok, ws, batch_size=args.batch_size, device="cpu", precision="fp32"),
        "bf16": lambda ws: predict_tags(model, tok, ws, batch_size=args.batch_size, device="cpu", precision="bf16"),
    }
    fig: dict[str, float] = {}
    if not args.no_pipeline:
        import copy

        def pipeline_runner(m: Any) -> Any:
            pipe = pipeline("token-classification", model=m, tokenizer=tok, aggregation_strategy="first",
                            batch_size=args.batch_size, device=-1)
            return lambda ws: [groups_to_tags(w, g) for w, g in zip(ws, pipe([" ".join(w) for w in ws]))]

        runners["pipe"] = pipeline_runner(model)
        runners["pipe_bf16"] = pipeline_runner(copy.deepcopy(model).to(torch.bfloat16))
    if not args.no_onnx:
        onnx_model, fig["export_s"] = timed(load_onnx_int8, model)
        runners["int8"] = lambda ws: predict_tags(onnx_model, tok, ws, batch_size=args.batch_size)

    # Interleaved repeats, best time of each: the machine is shared, so the minimum is the fairest estimate.
    best = {name: float("inf") for name in runners}
    tags: dict[str, list[list[str]]] = {}
    for name, run in runners.items():
        run(words[: min(64, n)])  # warm-up
    for _ in range(args.repeat):
        for name, run in runners.items():
            tags[name], secs = timed(run, words)
            best[name] = min(best[name], secs)
    labels = {"ours": "ours (torch fp32)", "bf16": "ours (torch bf16)", "int8": "ours (onnx-int8)",
              "pipe": "HF pipeline fp32", "pipe_bf16": "HF pipeline bf16"}
    for name in runners:
        fig[f"{name}_sps"] = n / best[name]
        fig[f"f1_{name}"] = f1(gold, tags[name])
        extra = ""
        if name != "ours":
            fig[f"agree_{name}"] = f1(tags["ours"], tags[name])
            extra = f"; agreement with our fp32 tags F1 {fig[f'agree_{name}']:.2f}"
        if name == "int8":
            extra += f"; export+quantize (or cache load) {fig['export_s']:.1f} s"
        print(f"{labels[name]:<20}{fig[f'{name}_sps']:8.1f} sentences/s  F1 vs gold {fig[f'f1_{name}']:.2f}  "
              f"(best {best[name]:.1f} s{extra})")

    pipes = [p for p in ("pipe", "pipe_bf16") if f"{p}_sps" in fig]
    base = max(pipes, key=lambda p: fig[f"{p}_sps"]) if pipes else None
    ok = [b for b in ("ours", "bf16", "int8") if f"{b}_sps" in fig and abs(fig[f"f1_{b}"] - fig["f1_ours"]) <= 0.5]
    fastest = max(ok, key=lambda b: fig[f"{b}_sps"])
    print(f"baseline: {labels[base] if base else 'none'}; our fastest backend within 0.5 F1 of fp32: "
          f"{labels[fastest]}")
    head = [f"ratio={fig[f'{fastest}_sps'] / fig[f'{base}_sps']:.3f}" if base else "ratio=nan",
            f"fastest={fastest}", f"baseline={base}"]
    for b in ("ours", "bf16", "int8"):
        if base and f"{b}_sps" in fig:
            head.append(f"ratio_{b}={fig[f'{b}_sps'] / fig[f'{base}_sps']:.3f}")
    rest = [f"{k}={v:.2f}" for k, v in fig.items()]
    print(" ".join(head + rest + [f"trained_head={int(trained)}", f"n={n}"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
