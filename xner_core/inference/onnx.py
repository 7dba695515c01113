"""Stage 4, predict (optional backend): a token classifier exported to ONNX and quantized to int8 for the CPU.

`load_onnx_int8(model)` exports a fine-tuned PyTorch token classifier once with `torch.onnx.export`
(dynamic batch and sequence axes), quantizes its weights with ONNX Runtime's `quantize_dynamic` (QInt8) and
caches the result under `<cache>/onnx/<key>/model.int8.onnx`, where `<key>` is a hash of the model's weights
and config, so a model with other weights (another fine-tune, another random head) never reuses a stale file.
`OnnxTokenClassifier` has the call surface `predict_tags` needs: `__call__(input_ids, attention_mask) -> logits`
plus `config` (labels, position limit).

Exporter: torch 2.13 defaults to the torch.export-based exporter (`dynamo=True`), which needs the
`onnxscript` package; that package is not a dependency, so the legacy TorchScript exporter (`dynamo=False`,
still in torch 2.13, deprecated) is used, and the dynamo exporter only when the legacy one is gone and
`onnxscript` is installed.

Int8 weights shift the logits slightly: check entity F1 against fp32 (`benchmarks/bench_inference.py`) before
relying on it for reported numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xner_core.errors import ConfigError
from xner_core.paths import cache_dir

# Bump when the export recipe changes so old cache entries are not reused.
_RECIPE = "onnx-int8-v1"
_OPSET = 17
INT8_NAME = "model.int8.onnx"
CONFIG_NAME = "config.json"


def model_fingerprint(model: Any) -> str:
    """Return a short hash of a model's weights and config (the ONNX cache key).

    Args:
        model: a PyTorch model with `state_dict()` and a `config`.

    Returns:
        16 hex digits; the same weights and config give the same key on any machine.
    """
    import torch

    h = hashlib.blake2b(digest_size=8)
    h.update(_RECIPE.encode())
    config = getattr(model, "config", None)
    if config is not None:
        h.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # raw bytes of any dtype, no copy
    return h.hexdigest()


def onnx_int8_path(model: Any, cache: str | os.PathLike[str] | None = None) -> Path:
    """Return where the int8 export of `model` lives (or will live): `<cache>/onnx/<key>/model.int8.onnx`."""
    return cache_dir(cache) / "onnx" / model_fingerprint(model) / INT8_NAME


def _logits_module(model: Any) -> Any:
    """Wrap a model so the exported graph takes (input_ids, attention_mask) and returns the logits only."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    return LogitsOnly(model)


def _legacy_exporter_available() -> bool:
    return importlib.util.find_spec("torch.onnx._internal.torchscript_exporter") is not None


def export_onnx(model: Any, path: str | os.PathLike[str], opset: int = _OPSET) -> Path:
    """Export a token classifier to an fp32 ONNX file with dynamic batch and sequence axes.

    Args:
        model: a PyTorch token classifier (any device/dtype; a CPU fp32 copy is exported when needed).
        path: the output file.
        opset: the ONNX opset.

    Returns:
        The path written. Raises ConfigError when no usable exporter is installed.
    """
    import copy

    import torch

    first = next(model.parameters())
    if first.device.type != "cpu" or first.dtype != torch.float32:
        model = copy.deepcopy(model).to("cpu", torch.float32)
    was_training = model.training
    model.eval()
    wrapper = _logits_module(model)
    ids = torch.full((2, 8), 5, dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 6:] = 0  # a padded row, so the mask path is traced as data, not as a constant
    names = ["input_ids", "attention_mask"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["logits"]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter
            if _legacy_exporter_available():
                torch.onnx.export(wrapper, (ids, mask), str(path), dynamo=False, input_names=names,
                                  output_names=["logits"], dynamic_axes=axes, opset_version=opset)
            elif importlib.util.find_spec("onnxscript") is not None:
                batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
                torch.onnx.export(wrapper, (ids, mask), str(path), dynamo=True, input_names=names,
                                  output_names=["logits"], opset_version=opset, external_data=False,
                                  dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                  "attention_mask": {0: batch, 1: seq}})
            else:
                raise ConfigError("this torch has no TorchScript ONNX exporter and its dynamo exporter needs the "
                                  "'onnxscript' package; install onnxscript or use backend='torch'")
    finally:
        model.train(was_training)
    return Path(path)


def export_onnx_int8(model: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Export `model`, quantize it to int8 and write `model.int8.onnx` + `config.json` into `out_dir`.

    The fp32 export and the quantization happen in a temporary folder next to `out_dir`; the finished file
    is moved in with an atomic rename, so a reader never sees a half-written model, and `model.int8.onnx`
    existing means the entry is complete.

    Args:
        model: a PyTorch token classifier.
        out_dir: the cache entry folder.

    Returns:
        The path of `model.int8.onnx`.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx"
        int8 = Path(tmp) / INT8_NAME
        export_onnx(model, fp32)
        with _quiet_root_logger():
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        conf = Path(tmp) / CONFIG_NAME
        conf.write_text(model.config.to_json_string(use_diff=False), encoding="utf-8")
        os.replace(conf, out / CONFIG_NAME)
        os.replace(int8, out / INT8_NAME)  # last: its presence marks the entry complete
    return out / INT8_NAME


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Silence ONNX Runtime's root-logger advice to run `quant_pre_process` while quantizing.

    That pre-processing fails on BERT exports ("Incomplete symbolic shape inference") and is not needed. A
    NullHandler keeps `logging.warning` from calling `basicConfig()` (which would leave a stderr handler on
    the caller's root logger); both it and the filter are removed afterwards.
    """
    root = logging.getLogger()
    null = logging.NullHandler()
    quiet = logging.Filter("xner.never")  # drops every record that reaches the root logger itself
    root.addHandler(null)
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        root.removeHandler(null)


class OnnxTokenClassifier:
    """An ONNX Runtime session over an exported token classifier, callable like the PyTorch model's logits.

    Attributes:
        path: the `.onnx` file.
        config: the source model's `transformers` config (id2label, max_position_embeddings, ...).
    """

    def __init__(self, path: str | os.PathLike[str], config: Any = None, num_threads: int | None = None) -> None:
        """Open a session on `path` (CPU).

        Args:
            path: an ONNX file taking int64 `input_ids`, `attention_mask` and returning `logits`.
            config: the model config; read from `config.json` next to `path` when None.
            num_threads: intra-op threads (default: `torch.get_num_threads()`, matching the torch backend).
        """
        import onnxruntime as ort
        import torch

        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"ONNX model {str(self.path)!r} not found; export one with load_onnx_int8(model)")
        if config is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(self.path.parent))
        self.config = config
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.training = False

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        """Run the model.

        Args:
            input_ids: (batch, sequence) int ids, a numpy array or torch tensor.
            attention_mask: (batch, sequence) 1 for real tokens, 0 for padding.

        Returns:
            A float32 torch tensor of logits (batch, sequence, labels).
        """
        import torch

        feeds = {"input_ids": _int64(input_ids), "attention_mask": _int64(attention_mask)}
        (logits,) = self.session.run(["logits"], feeds)
        return torch.from_numpy(logits)

    def __repr__(self) -> str:
        return f"OnnxTokenClassifier({str(self.path)!r})"


def _int64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.int64)


def load_onnx_int8(model: Any, cache: str | os.PathLike[str] | None = None,
                   num_threads: int | None = None) -> OnnxTokenClassifier:
    """Return the int8 ONNX version of `model`, exporting and quantizing it on first use.

    Args:
        model: a PyTorch token classifier.
        cache: the xner cache root (default: `xner_core.paths.cache_dir()`).
        num_threads: intra-op threads (default `torch.get_num_threads()`).

    Returns:
        An `OnnxTokenClassifier` over `<cache>/onnx/<key>/model.int8.onnx`. Hashing the weights for the key
        takes about a second for a 100M-parameter model: keep the returned object for repeated calls.
    """
    from filelock import FileLock

    path = onnx_int8_path(model, cache)
    if not path.is_file():
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        # One exporter per entry across processes; the second waits and then finds the file.
        with FileLock(str(path.parent) + ".lock"):
            if not path.is_file():
                export_onnx_int8(model, path.parent)
    return OnnxTokenClassifier(path, config=model.config, num_threads=num_threads)

