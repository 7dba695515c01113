"""Compute our overlap figures for the reference pairs beside the study's, into data/overlap_reference_pairs.csv.

For every reference pair (source -> target) two settings, as in the study:
- transfer: source train -> target test;
- native:   target train -> target test.

Our data are WikiANN's Rahimi splits, not the study's own 80/20 split of the original WikiANN files, so the
figures are expected to differ (see docs/paper-spec.md §2); the table shows by how much. cs has no local data, so the
cs->sk transfer row carries only the study's numbers.

Usage: python scripts/compute_overlap_table.py [--data-dir DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from xner_core.corpus.languages import reference_pairs
from xner_core.corpus.wikiann import load_wikiann, wikiann_file
from xner_core.features.overlap import entity_chunk_overlap, entity_token_overlap, o_word_overlap
from xner_core.paths import repo_data_dir

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"
COLUMNS = ("source", "target", "setting", "entity_token_overlap", "unique_chunk_overlap", "o_word_overlap",
           "paper_token_overlap", "paper_unique_chunk_overlap", "o_word_overlap_p2", "paper_p2_o_token_fraction")


def _paper_numbers(ref_dir: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    """(source, target, setting) -> the study's token overlap, unique chunk overlap and P2 fraction."""
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    with (ref_dir / "paper_ner_f1.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = (row["source"], row["target"], row["setting"])
            out.setdefault(key, {})["paper_token_overlap"] = row["token_overlap"]
    with (ref_dir / "paper_overlap.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = (row["source"], row["target"], row["setting"])
            out.setdefault(key, {}).update(paper_unique_chunk_overlap=row["unique_chunk_overlap"],
                                           paper_p2_o_token_fraction=row["p2_o_token_fraction"])
    return out


def compute_rows(data_dir: str | None, ref_dir: Path) -> list[dict[str, str]]:
    """One row per (pair, setting); our columns empty where a split is missing locally."""
    paper = _paper_numbers(ref_dir)
    rows: list[dict[str, str]] = []
    for pair in reference_pairs():
        for setting, src_lang in (("transfer", pair.source), ("native", pair.target)):
            row = {"source": src_lang, "target": pair.target, "setting": setting}
            row.update(paper.get((src_lang, pair.target, setting), {}))
            if wikiann_file(src_lang, "train", data_dir) and wikiann_file(pair.target, "test", data_dir):
                src = load_wikiann(src_lang, "train", data_dir)
                tgt = load_wikiann(pair.target, "test", data_dir)
                tok = entity_token_overlap(src, tgt)
                chunk = entity_chunk_overlap(src, tgt)
                word = o_word_overlap(src, tgt)
                row.update(entity_token_overlap=f"{tok.overlap_target:.4f}",
                           unique_chunk_overlap=f"{chunk.ratio_target:.4f}",
                           o_word_overlap=f"{word.ratio:.4f}", o_word_overlap_p2=f"{word.p2_ratio:.4f}")
            rows.append({c: row.get(c, "") for c in COLUMNS})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="WikiANN directory (default XNER_DATA_DIR)")
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE_DIR, help="folder of paper_*.csv")
    parser.add_argument("--out", type=Path, default=repo_data_dir() / "overlap_reference_pairs.csv")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = compute_rows(args.data_dir, args.reference_dir)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    width = max(len(c) for c in COLUMNS)
    print("  ".join(c[:width] for c in COLUMNS))
    for row in rows:
        print("  ".join(row[c] for c in COLUMNS))
    print(f"wrote {len(rows)} rows to {args.out} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
