"""Benchmark the core pipeline on es→ca: file loading, every overlap measure, and entity_replace (P1).

Data: es train (20k sentences) as the source, ca test (10k) as the target, from XNER_DATA_DIR.
Each of ours is timed beside a baseline measured in the same run:
- loading: pandas.read_csv over the same gzip file (a fast general-purpose reader; it yields rows, not sentences);
- overlap: the study's notebook approach (pandas over file lines: drop O/blank lines, set intersection,
  value counts) for the entity-token and chunk measures;
- entity_replace: a straightforward reference implementation of P1 (seqeval's get_entities per sentence,
  Python lists) with the same semantics.
The last line is `ratio=<ours/baseline, summed over the stages> ...` with each stage's figures after it.

Usage: python benchmarks/bench_core.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xner_core.corpus import wikiann as corpus_mod  # noqa: E402
from xner_core.corpus.wikiann import load_wikiann, wikiann_file  # noqa: E402
from xner_core.features.overlap import entity_chunk_overlap, entity_token_overlap, o_word_overlap, subword_overlap  # noqa: E402
from xner_core.perturb.apply import perturb_corpus  # noqa: E402
from xner_core.perturb.context import build_context  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402


def pandas_load(path: Path):
    import csv

    import pandas as pd

    return pd.read_csv(path, sep="\t", header=None, quoting=csv.QUOTE_NONE, names=["token", "tag"],
                       dtype=str, keep_default_na=False, compression="gzip" if path.suffix == ".gz" else None)


def notebook_overlap(src_path: Path, tgt_path: Path) -> tuple[float, float]:
    """The study's way: lines as strings, drop blanks and O lines, intersect sets, count (docs/paper-spec.md §5.1/5.2)."""
    import pandas as pd

    def lines(p: Path) -> list[str]:
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            return [ln.rstrip("\n").split(":", 1)[-1] if ln[:3].endswith(":") else ln.rstrip("\n") for ln in fh]

    s, t = lines(src_path), lines(tgt_path)
    s_ent = pd.Series([x for x in s if x and not x.endswith("\tO")])
    t_ent = pd.Series([x for x in t if x and not x.endswith("\tO")])
    shared = set(s_ent) & set(t_ent)
    tok = t_ent.isin(shared).sum() / len(t_ent)

    def chunks(ls: list[str]) -> set[str]:
        out, cur = set(), []
        for x in ls + [""]:
            tag = x.rsplit("\t", 1)[-1] if x else "O"
            if tag.startswith("B-") or tag == "O":
                if cur:
                    out.add(" ".join(cur))
                cur = [x.rsplit("\t", 1)[0]] if tag.startswith("B-") else []
            else:
                cur.append(x.rsplit("\t", 1)[0])
        return out

    cs, ct = chunks(s), chunks(t)
    return float(tok), len(cs & ct) / len(ct)


def reference_entity_replace(source, target, seed: int):
    """Plain P1: seqeval chunks, shared by surface string, replaced by a random unshared same-type target chunk."""
    from seqeval.metrics.sequence_labeling import get_entities

    def chunks_of(sent):
        return [(t, s, e) for t, s, e in get_entities(list(sent.tags))]

    src_strings = {" ".join(s.tokens[a:b + 1]) for s in source for _, a, b in chunks_of(s)}
    pool: dict[str, list[list[str]]] = {}
    for s in target:
        for t, a, b in chunks_of(s):
            toks = list(s.tokens[a:b + 1])
            if " ".join(toks) not in src_strings and toks not in pool.setdefault(t, []):
                pool[t].append(toks)
    rng = random.Random(seed)
    out = []
    for s in target:
        tokens, tags = list(s.tokens), list(s.tags)
        for t, a, b in reversed(chunks_of(s)):
            if " ".join(s.tokens[a:b + 1]) in src_strings and pool.get(t):
                new = rng.choice(pool[t])
                tokens[a:b + 1] = new
                tags[a:b + 1] = [f"B-{t}"] + [f"I-{t}"] * (len(new) - 1)
        out.append((tokens, tags))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    data_dir = args.data_dir or os.environ.get("XNER_DATA_DIR")
    src_path, tgt_path = wikiann_file("es", "train", data_dir), wikiann_file("ca", "test", data_dir)
    if src_path is None or tgt_path is None:
        sys.exit("es/ca WikiANN files not found; set XNER_DATA_DIR")

    def ours_load():
        corpus_mod.clear_cache()
        return load_wikiann("es", "train", data_dir), load_wikiann("ca", "test", data_dir)

    t_load, (src, tgt) = best_of(ours_load, args.repeat)
    b_load, _ = best_of(lambda: (pandas_load(src_path), pandas_load(tgt_path)), args.repeat)

    def ours_overlap():
        return (entity_token_overlap(src, tgt), entity_chunk_overlap(src, tgt), o_word_overlap(src, tgt))

    t_ov, (tok, chunk, word) = best_of(ours_overlap, args.repeat)
    b_ov, (b_tok, b_chunk) = best_of(lambda: notebook_overlap(src_path, tgt_path), args.repeat)

    from xner_core.models.registry import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer([" ".join(s.tokens) for s in src.sentences[:2000]], vocab_size=8000)
    t_sub, sub = best_of(lambda: subword_overlap(src, tgt, tokenizer), 1)

    def ours_p1():
        ctx = build_context(src, tgt)
        return perturb_corpus("entity_replace", tgt, ctx, seed=1)

    t_p1, res = best_of(ours_p1, args.repeat)
    b_p1, _ = best_of(lambda: reference_entity_replace(src, tgt, 1), args.repeat)

    print(f"data: es train {len(src)} sentences -> ca test {len(tgt)} sentences (best of {args.repeat})")
    print(f"load          ours {t_load:6.3f} s   pandas.read_csv {b_load:6.3f} s")
    print(f"overlap       ours {t_ov:6.3f} s   notebook-style  {b_ov:6.3f} s   "
          f"(token {tok.overlap_target:.4f} vs {b_tok:.4f}; chunk {chunk.ratio_target:.4f} vs {b_chunk:.4f}; "
          f"o-word {word.ratio:.4f})")
    print(f"subword       ours {t_sub:6.3f} s   (type {sub.type_ratio:.4f}, token {sub.token_ratio:.4f})")
    print(f"entity_replace ours {t_p1:6.3f} s  reference P1     {b_p1:6.3f} s   "
          f"({res.report.entities_changed} of {res.report.entities} entities changed)")
    ours_total, base_total = t_load + t_ov + t_p1, b_load + b_ov + b_p1
    print(f"ratio={ours_total / base_total:.3f} load_ratio={t_load / b_load:.3f} overlap_ratio={t_ov / b_ov:.3f} "
          f"p1_ratio={t_p1 / b_p1:.3f} load_s={t_load:.3f} overlap_s={t_ov:.3f} subword_s={t_sub:.3f} "
          f"p1_s={t_p1:.3f} under_2s={max(t_load, t_ov, t_sub, t_p1) < 2.0}")


if __name__ == "__main__":
    main()
