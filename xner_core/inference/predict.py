"""Stage 4, predict: batched, length-sorted inference of word-level IOB2 tags.

Input is pre-split words (a `Sentence` or a list of strings per sentence); output is one IOB2 tag per word,
read from the model's prediction on the word's FIRST sub-token (the same alignment training uses).

How a call runs:
1. The whole input is tokenised once by the fast tokenizer (`is_split_into_words=True`); batches are sliced
   from that one encoding, so there is no per-sentence tokenizer call.
2. A sentence longer than the model's limit is split into windows of whole words that overlap by `stride`
   sub-tokens; every word takes its tag from the window in which it is most central (farthest from a cut
   edge), so no sentence is ever silently truncated.
3. All model inputs (sentences and windows) are sorted by sub-token length, cut into batches padded to the
   longest member (dynamic padding), run under `torch.inference_mode` (bf16/fp16 autocast on CUDA), and the
   results are put back in the caller's order.
4. Words that yield no sub-token (zero-width characters, odd whitespace) get "O" and keep their place.
5. The tags are repaired to valid IOB2 (`repair_iob2`): a model may emit I-X after O or after another type;
   that I-X becomes B-X. `xner_core.corpus.tags.spans` (like seqeval's default mode) already reads such a stray I-X
   as the start of a new entity, so the repair never changes which entities a sequence denotes; it only
   makes the output valid for every downstream consumer.

User-typed text (`predict_text`, `split_words`, `join_words`) is handled in `xner_core.inference.text`.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, NamedTuple, Sequence, cast, overload

import numpy as np

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import repair_iob2, spans
from xner_core.errors import ConfigError
from xner_core.numerics import resolve_device, resolve_precision

if TYPE_CHECKING:
    pass

BACKENDS: tuple[str, ...] = ("torch", "onnx-int8")

# Models whose position ids start after the padding index (the first pad_token_id + 1 positions are unusable).
_OFFSET_POSITION_MODELS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer"})
# tokenizer.model_max_length is a huge sentinel (int(1e30)) when the tokenizer does not know its model's limit.
_NO_TOKENIZER_LIMIT = 1_000_000


@dataclass(frozen=True)
class Prediction:
    """Tags plus the model's confidence in each word's predicted label.

    `probs[i][j]` is the softmax probability of the label the model chose for word j of sentence i (before
    the IOB2 repair turns a stray I-X into B-X; 0.0 for words without sub-tokens).
    """

    tags: list[list[str]]
    probs: list[list[float]]


class EntitySpan(NamedTuple):
    """One predicted entity: [start, end) (word indices, or character offsets for `TextPrediction`)."""

    start: int
    end: int
    type: str
    text: str


@dataclass(frozen=True)
class _Item:
    """One model input: a whole sentence or one window of it."""

    sent: int  # index of the sentence in the input
    ids: list[int]  # sub-token ids including the special tokens
    positions: np.ndarray  # position (in ids) of each covered word's first sub-token
    words: np.ndarray  # the word index of each entry of `positions`
    centrality: np.ndarray | None  # per entry: distance to the nearest cut edge (None: a whole sentence)


# --------------------------------------------------------------------------------------------------- helpers


def max_sequence_length(model: Any, tokenizer: Any, max_length: int | None = None) -> int:
    """Return the longest input (sub-tokens, specials included) the model takes.

    Args:
        model: the token classifier (its `config.max_position_embeddings` counts).
        tokenizer: its tokenizer (`model_max_length` counts when it is set).
        max_length: an optional further cap from the caller.

    Returns:
        The smallest of the known limits (512 when none is known).
    """
    limits: list[int] = []
    if max_length is not None:
        if max_length < 1:
            raise ConfigError(f"max_length must be a positive number of sub-tokens, got {max_length}")
        limits.append(int(max_length))
    config = getattr(model, "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        if getattr(config, "model_type", "") in _OFFSET_POSITION_MODELS:
            positions -= (getattr(config, "pad_token_id", 1) or 0) + 1
        limits.append(int(positions))
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < _NO_TOKENIZER_LIMIT:
        limits.append(int(tok_limit))
    return min(limits) if limits else 512


def _words_of(sentences: Sequence[Sentence] | Sequence[Sequence[str]]) -> list[list[str]]:
    out: list[list[str]] = []
    for i, s in enumerate(sentences):
        if isinstance(s, Sentence):
            out.append(list(s.tokens))
        elif isinstance(s, str):
            raise ConfigError(f"input {i} is a string; predict_tags takes pre-split words (a list of strings or a "
                              f"Sentence per sentence); use predict_text for raw text")
        else:
            words = list(cast(Sequence[str], s))
            for w in words:
                if not isinstance(w, str):
                    raise ConfigError(f"input {i} holds a {type(w).__name__}, not a word; give strings")
            out.append(words)
    return out


def _labels_of(model: Any) -> list[str]:
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if not id2label:
        raise ConfigError("the model has no config.id2label; give a token classifier whose labels are IOB2 tags")
    labels = [str(id2label[k]) for k in sorted(id2label, key=int)]
    bad = [x for x in labels if x != "O" and not (x[:2] in ("B-", "I-") and len(x) > 2)]
    if bad or "O" not in labels:
        raise ConfigError(f"the model's labels {labels} are not IOB2 tags; expected 'O' plus 'B-X'/'I-X' labels "
                          f"(e.g. {', '.join(('O', 'B-PER', 'I-PER'))})")
    return labels


def _mapped_labels(model: Any, labels: Sequence[str]) -> list[str]:
    """A checkpoint's label map: one of our IOB2 labels per output id (+ "O" for words without sub-tokens)."""
    out = [str(x) for x in labels]
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if id2label and len(id2label) != len(out):
        raise ConfigError(f"the label map has {len(out)} labels but the model has {len(id2label)} outputs")
    bad = [x for x in out if x != "O" and not (x[:2] in ("B-", "I-") and len(x) > 2)]
    if bad:
        raise ConfigError(f"the label map holds {bad}, not IOB2 tags; map a checkpoint's labels with "
                          f"models.labels.map_labels")
    return out if "O" in out else [*out, "O"]  # the extra id is never predicted


def _windows(lengths: Sequence[int], room: int, stride: int) -> list[tuple[int, int]]:
    """Cut words with sub-token counts `lengths` (each <= room) into windows [a, b) of at most `room` sub-tokens.

    Consecutive windows overlap by at most `stride` sub-tokens of whole words, and each window reaches at
    least one word past the previous one, so the loop always ends.
    """
    n = len(lengths)
    out: list[tuple[int, int]] = []
    a = 0
    while True:
        b, total = a, 0
        while b < n and total + lengths[b] <= room:
            total += lengths[b]
            b += 1
        out.append((a, b))
        if b >= n:
            return out
        nxt, tail = b, 0
        while nxt - 1 > a and tail + lengths[nxt - 1] <= stride and tail + lengths[nxt - 1] + lengths[b] <= room:
            nxt -= 1
            tail += lengths[nxt]
        a = nxt


def _items_for(sent: int, ids: list[int], word_ids: list[int | None], limit: int, stride: int | None) -> list[_Item]:
    """Turn one sentence's encoding into model inputs (itself, or overlapping windows when too long)."""
    pre = 0
    while pre < len(ids) and word_ids[pre] is None:
        pre += 1
    if pre == len(ids):  # no word produced a sub-token
        return []
    post = len(ids)
    while word_ids[post - 1] is None:
        post -= 1
    content_wids = word_ids[pre:post]
    # First sub-token of each word that has one (positions relative to the content).
    starts: list[int] = []
    words: list[int] = []
    prev = None
    for p, w in enumerate(content_wids):
        if w != prev:
            starts.append(p)
            words.append(w)  # type: ignore[arg-type]
            prev = w
    if len(ids) <= limit:
        return [_Item(sent, ids, np.asarray(starts, dtype=np.int64) + pre, np.asarray(words, dtype=np.int64), None)]

    room = limit - pre - (len(ids) - post)
    if room < 1:
        raise ConfigError(f"max_length {limit} leaves no room for words next to the {len(ids) - post + pre} special "
                          f"tokens; give a larger max_length")
    overlap = room // 2 if stride is None else max(0, min(int(stride), room - 1))
    ends = starts[1:] + [post - pre]
    piece_lists = [ids[pre + s: pre + e][:room] for s, e in zip(starts, ends)]  # a giant word keeps `room` pieces
    lengths = [len(p) for p in piece_lists]
    head, tail = ids[:pre], ids[post:]
    items: list[_Item] = []
    for a, b in _windows(lengths, room, overlap):
        offsets = np.cumsum([0] + lengths[a:b])
        body = [t for pieces in piece_lists[a:b] for t in pieces]
        total = int(offsets[-1])
        # Centrality in sub-tokens; a window edge that is the sentence's own edge is no cut.
        left = offsets[:-1] if a > 0 else np.full(b - a, math.inf)
        right = (total - offsets[1:]) if b < len(lengths) else np.full(b - a, math.inf)
        items.append(_Item(sent, head + body + tail, offsets[:-1].astype(np.int64) + pre,
                            np.asarray(words[a:b], dtype=np.int64), np.minimum(left, right)))
    return items


_ONNX_MEMO: "weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]]" = weakref.WeakKeyDictionary()
_ONNX_LOCK = threading.Lock()


def _onnx_for(model: Any, load: Callable[[Any], Any]) -> Any:
    """The int8 ONNX twin of a torch model, loaded once per model object and weight state.

    `load` hashes every weight to find (or build) the cached file, about a second for e5-small; repeated
    `predict_tags` calls on the same, unchanged model skip that. Tensors count their in-place changes
    (`_version`), so a model trained further between calls gets a new twin.
    """
    state = tuple((id(t), t._version) for t in model.state_dict(keep_vars=True).values())
    with _ONNX_LOCK:
        memo = _ONNX_MEMO.get(model)
        if memo is not None and memo[0] == state:
            return memo[1]
    twin = load(model)
    with _ONNX_LOCK:
        _ONNX_MEMO[model] = (state, twin)
    return twin


def _forward(model: Any, backend: str, device: Any, precision: str = "auto"
             ) -> tuple[Callable[[np.ndarray, np.ndarray], Any], Callable[[], None]]:
    """Return (run(ids, mask) -> logits tensor, restore()) for a torch model or an ONNX classifier."""
    import torch

    from xner_core.inference.onnx import OnnxTokenClassifier, load_onnx_int8

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if isinstance(model, OnnxTokenClassifier) or backend == "onnx-int8":
        if device is not None and device != "auto" and torch.device(device).type != "cpu":
            raise ConfigError(f"the onnx-int8 backend runs on the CPU only; got device {device!r}; use device='cpu' "
                              f"or backend='torch'")
        onnx_model = model if isinstance(model, OnnxTokenClassifier) else _onnx_for(model, load_onnx_int8)
        return (lambda ids, mask: onnx_model(ids, mask)), (lambda: None)

    dev = resolve_device(device)
    was_training = model.training
    model.eval()  # dropout off; restored afterwards
    first = next(model.parameters(), None)
    if first is not None and first.device != dev:
        model.to(dev)
    autocast_dtype = None
    if resolve_precision(precision, dev) == "bf16":
        autocast_dtype = torch.bfloat16
        if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            autocast_dtype = torch.float16

    def run(ids: np.ndarray, mask: np.ndarray) -> Any:
        t_ids = torch.from_numpy(ids).to(dev, non_blocking=True)
        t_mask = torch.from_numpy(mask).to(dev, non_blocking=True)
        if autocast_dtype is None:
            return model(input_ids=t_ids, attention_mask=t_mask).logits
        with torch.autocast(device_type=dev.type, dtype=autocast_dtype):
            return model(input_ids=t_ids, attention_mask=t_mask).logits

    return run, (lambda: model.train(was_training))


# ------------------------------------------------------------------------------------------------ public API


@overload
def predict_tags(model: Any, tokenizer: Any, sentences: Sequence[Sentence] | Sequence[Sequence[str]],
                 batch_size: int = ..., device: Any = ..., max_length: int | None = ...,
                 return_probs: Literal[False] = ..., *, stride: int | None = ..., backend: str = ...,
                 precision: str = ..., labels: Sequence[str] | None = ...) -> list[list[str]]: ...


@overload
def predict_tags(model: Any, tokenizer: Any, sentences: Sequence[Sentence] | Sequence[Sequence[str]],
                 batch_size: int = ..., device: Any = ..., max_length: int | None = ...,
                 return_probs: Literal[True] = ..., *, stride: int | None = ..., backend: str = ...,
                 precision: str = ..., labels: Sequence[str] | None = ...) -> Prediction: ...


def predict_tags(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[Sentence] | Sequence[Sequence[str]],
    batch_size: int = 32,
    device: Any = None,
    max_length: int | None = None,
    return_probs: bool = False,
    *,
    stride: int | None = None,
    backend: str = "torch",
    precision: str = "auto",
    labels: Sequence[str] | None = None,
) -> list[list[str]] | Prediction:
    """Predict one IOB2 tag per word.

    Args:
        model: a token classifier (`AutoModelForTokenClassification`) whose `config.id2label` are IOB2 tags,
            or an `OnnxTokenClassifier`.
        tokenizer: its FAST tokenizer (word alignment needs `word_ids()`).
        sentences: `Sentence`s or lists of words.
        batch_size: model inputs per forward pass.
        device: None/"auto" (CUDA when available), "cpu", "cuda", ... The model is moved there.
        max_length: an optional cap on the sub-tokens per model input (specials included); the model's and
            tokenizer's own limits always apply. Longer sentences are windowed, never truncated.
        return_probs: also return each word's confidence (a `Prediction`).
        stride: overlap, in sub-tokens, between consecutive windows of a too-long sentence (default: half a
            window).
        backend: "torch", or "onnx-int8" to export, quantize and cache the model for ONNX Runtime on the CPU
            (see `xner_core.inference.onnx`; an `OnnxTokenClassifier` given as `model` implies it).
        precision: the torch backend's autocast (`numerics.resolve_precision`): auto = bf16 on CUDA (fp16
            without bf16 support) and on CPUs with native bf16, else fp32.
        labels: our IOB2 label of each output id, for a checkpoint whose own labels are not ours (the
            `labels` of `models.labels.map_labels`); default: the model's `config.id2label`, which must be IOB2.

    Returns:
        `list[list[str]]` aligned with the input words (valid IOB2; [] for an empty sentence), or a
        `Prediction` when `return_probs`.
    """
    import torch

    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("predict_tags needs a fast tokenizer (word_ids() for first-sub-token alignment); "
                          "load it with AutoTokenizer.from_pretrained(..., use_fast=True)")
    words = _words_of(sentences)
    labels = _labels_of(model) if labels is None else _mapped_labels(model, labels)
    o_id = labels.index("O")
    label_ids = [np.full(len(w), o_id, dtype=np.int64) for w in words]
    probs = [np.zeros(len(w), dtype=np.float32) for w in words]
    best = [np.full(len(w), -math.inf) for w in words]

    todo = [i for i, w in enumerate(words) if w]
    if todo:
        limit = max_sequence_length(model, tokenizer, max_length)
        # One tokenizer call for the whole input; verbose=False: long sentences are windowed below.
        enc = tokenizer([words[i] for i in todo], is_split_into_words=True, add_special_tokens=True,
                        truncation=False, verbose=False)
        items: list[_Item] = []
        for k, i in enumerate(todo):
            e = enc.encodings[k]
            items.extend(_items_for(i, e.ids, e.word_ids, limit, stride))
        items.sort(key=lambda it: len(it.ids), reverse=True)  # longest first: memory trouble shows at once
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        run, restore = _forward(model, backend, device, precision)
        try:
            with torch.inference_mode():
                for start in range(0, len(items), batch_size):
                    batch = items[start:start + batch_size]
                    width = max(len(it.ids) for it in batch)
                    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
                    mask = np.zeros((len(batch), width), dtype=np.int64)
                    for r, it in enumerate(batch):
                        ids[r, : len(it.ids)] = it.ids
                        mask[r, : len(it.ids)] = 1
                    logits = run(ids, mask)
                    if return_probs:
                        conf_t, pred_t = torch.softmax(logits.float(), dim=-1).max(dim=-1)
                        conf = conf_t.cpu().numpy()
                    else:
                        pred_t = logits.argmax(dim=-1)
                    pred = pred_t.cpu().numpy()
                    for r, it in enumerate(batch):
                        got = pred[r, it.positions]
                        if it.centrality is None:
                            label_ids[it.sent][it.words] = got
                            if return_probs:
                                probs[it.sent][it.words] = conf[r, it.positions]
                            continue
                        # Windows: keep the prediction from the window where the word is most central.
                        take = it.centrality > best[it.sent][it.words]
                        w = it.words[take]
                        best[it.sent][w] = it.centrality[take]
                        label_ids[it.sent][w] = got[take]
                        if return_probs:
                            probs[it.sent][w] = conf[r, it.positions[take]]
        finally:
            restore()

    tags = [repair_iob2([labels[j] for j in row]) for row in label_ids]
    if return_probs:
        return Prediction(tags, [p.tolist() for p in probs])
    return tags


def predict_entities(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[Sentence] | Sequence[Sequence[str]],
    **kwargs: Any,
) -> list[list[EntitySpan]]:
    """Predict entities as word spans with their text (for display).

    Args:
        model: as for `predict_tags`.
        tokenizer: as for `predict_tags`.
        sentences: `Sentence`s or lists of words.
        **kwargs: passed on to `predict_tags` (batch_size, device, max_length, stride, backend).

    Returns:
        Per sentence, `EntitySpan(start, end, type, text)` with [start, end) WORD indices and the text made by
        `join_words`.
    """
    from xner_core.inference.text import join_words  # imported here: text.py builds on this module

    kwargs.pop("return_probs", None)
    words = _words_of(sentences)
    tags = predict_tags(model, tokenizer, words, **kwargs)
    assert isinstance(tags, list)
    return [[EntitySpan(sp.start, sp.end, sp.etype, join_words(w[sp.start:sp.end])) for sp in spans(t)]
            for w, t in zip(words, tags)]
