"""Stage 3b, LoRA adapters (Hu et al., ICLR 2022) through `peft`: a run with `adapter = "lora"` trains low-rank
updates B A (r x in and out x r matrices, scaled by alpha / r) of the Linear modules named by `lora_targets`
(default the attention projections `query` and `value`) plus the whole token-classification head (peft's
`modules_to_save`); every other weight stays as it was.

`wrap` puts the adapters on a `*ForTokenClassification` (seeded: the same seed gives the same A matrices; B starts
at 0, so the wrapped model first predicts as the model it wraps), the shared training loop trains what requires a
gradient, and `merge` folds B A into the weights, returning a plain model (its trained head in place) with the
adapter itself attached (`adapter_of`): the model cache saves the merged weights, which every consumer reads
(inference, ONNX export, the dashboard), and the adapter beside them (`adapter/adapter_model.safetensors` +
`adapter/adapter_config.json`, peft's format: `PeftModel.from_pretrained(base, "<entry>/adapter")` rebuilds the
model from its base), the few MB to share. peft is imported only here and only when a run asks for LoRA.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from xner_core.errors import ConfigError
from xner_core.training.settings import LoraSpec

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"  # inside a cache entry or an export: a subdirectory, so the entry's root stays a plain
# save_pretrained model (transformers and pipelines would otherwise take adapter_config.json for a PEFT checkpoint)
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_ATTR = "xner_adapter"  # the attribute of a merged model holding its LoraAdapter (read by the model cache)


def require_peft() -> Any:
    """The `peft` module, or a ConfigError saying how to install it.

    Returns:
        The imported module.
    """
    try:
        import peft
    except ImportError:
        raise ConfigError("adapter 'lora' needs the `peft` package, which is not installed; install it "
                          "(`pip install peft`, or the project's lock: `uv pip install --no-deps -r "
                          "requirements.txt`) or train without an adapter (adapter = \"none\")") from None
    return peft


@dataclass(frozen=True, eq=False)
class LoraAdapter:
    """A trained LoRA adapter: its peft config (JSON-ready), its tensors (CPU) and what it trained."""

    spec: LoraSpec
    config: Mapping[str, Any]  # peft's adapter_config.json content
    state: Mapping[str, Any]  # peft's adapter state dict: lora_A/lora_B of every target, the head's weights
    head: tuple[str, ...]  # the modules trained fully (modules_to_save)
    trainable_parameters: int  # LoRA matrices + head
    total_parameters: int  # of the merged model

    @property
    def bytes(self) -> int:
        """Size of the adapter's tensors (about its safetensors file's size)."""
        return sum(int(t.numel()) * int(t.element_size()) for t in self.state.values())

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (for `TrainResult.info` and the cache manifest)."""
        return {"kind": "lora", "r": self.spec.r, "alpha": self.spec.alpha, "dropout": self.spec.dropout,
                "target_modules": list(self.spec.targets), "modules_to_save": list(self.head),
                "trainable_parameters": self.trainable_parameters, "total_parameters": self.total_parameters,
                "tensor_bytes": self.bytes}

    def save(self, directory: Path | str, base_model: str | None = None) -> list[Path]:
        """Write the adapter in peft's format (`adapter_model.safetensors`, `adapter_config.json`).

        Args:
            directory: created when missing.
            base_model: recorded as `base_model_name_or_path` (the model the adapter applies to).

        Returns:
            The files written.
        """
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        config = dict(self.config)
        if base_model is not None:
            config["base_model_name_or_path"] = base_model
        weights, cfg = out / ADAPTER_WEIGHTS, out / ADAPTER_CONFIG
        save_file({k: v.contiguous() for k, v in self.state.items()}, str(weights), metadata={"format": "pt"})
        cfg.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return [weights, cfg]


def adapter_of(model: Any) -> LoraAdapter | None:
    """The LoRA adapter a model was merged from (`merge`), or None for a model trained without one."""
    adapter = getattr(model, _ATTR, None)
    return adapter if isinstance(adapter, LoraAdapter) else None


def head_modules(model: Any) -> tuple[str, ...]:
    """The top-level modules of a token classifier outside its encoder that hold weights (BERT, XLM-R: classifier).

    Args:
        model: a `*ForTokenClassification`.

    Returns:
        Their names; ConfigError when there is none.
    """
    prefix = getattr(model, "base_model_prefix", "")
    head = tuple(name for name, module in model.named_children()
                 if name != prefix and any(True for _ in module.parameters()))
    if not head:
        raise ConfigError(f"cannot find the token-classification head of {type(model).__name__} (modules: "
                          f"{', '.join(n for n, _ in model.named_children())})")
    return head


def _check_targets(model: Any, targets: tuple[str, ...], head: tuple[str, ...]) -> None:
    import torch

    linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
              and name.split(".")[0] not in head]
    unmatched = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in linear)]
    if unmatched or set(targets) & set(head):
        known = sorted({n.split(".")[-1] for n in linear})
        what = ", ".join(unmatched) if unmatched else ", ".join(sorted(set(targets) & set(head)))
        raise ConfigError(f"lora_targets {what} names no Linear module of {type(model).__name__}'s encoder (the head "
                          f"{', '.join(head)} trains fully anyway); choose from: {', '.join(known)}")


def wrap(model: Any, spec: LoraSpec, seed: int) -> Any:
    """Put LoRA adapters on a token classifier (in place) and return the peft model that trains them.

    Args:
        model: a `*ForTokenClassification` with a BERT-like encoder.
        spec: the adapters' rank, scaling, dropout and target modules.
        seed: seeds the A matrices' initialisation (B starts at zero).

    Returns:
        A `peft.PeftModelForTokenClassification`: only the LoRA matrices and the head require a gradient.
    """
    import torch

    peft = require_peft()
    head = head_modules(model)
    _check_targets(model, spec.targets, head)
    config = peft.LoraConfig(task_type=peft.TaskType.TOKEN_CLS, r=spec.r, lora_alpha=spec.alpha,
                             lora_dropout=spec.dropout, target_modules=list(spec.targets),
                             modules_to_save=list(head), bias="none")
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes peft triggers
        wrapped = peft.get_peft_model(model, config)
    return wrapped


def trainable_parameters(model: Any) -> int:
    """Parameters that require a gradient."""
    return sum(int(p.numel()) for p in model.parameters() if p.requires_grad)


def _config_dict(config: Any, head: tuple[str, ...]) -> dict[str, Any]:
    # peft's to_dict holds sets and enums; written sorted so the same adapter gives the same file in any process.
    from enum import Enum

    def plain(value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, (set, frozenset)):
            return sorted(plain(v) for v in value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    out = plain(config.to_dict())
    out["modules_to_save"] = list(head)  # peft appends its task defaults (classifier, score): one of each
    return out


def merge(wrapped: Any, spec: LoraSpec) -> tuple[Any, LoraAdapter]:
    """Fold a trained adapter into the weights.

    Args:
        wrapped: the peft model `wrap` returned, trained.
        spec: its LoraSpec.

    Returns:
        (the plain model with merged weights and the trained head, every parameter requiring a gradient again,
        in eval mode, its adapter attached: `adapter_of`), and the adapter.
    """
    peft = require_peft()
    head = head_modules(wrapped.get_base_model())
    trainable = trainable_parameters(wrapped)
    state = {k: v.detach().to("cpu", copy=True) for k, v in peft.get_peft_model_state_dict(wrapped).items()}
    config = _config_dict(wrapped.peft_config["default"], head)
    merged = wrapped.merge_and_unload()
    for p in merged.parameters():
        p.requires_grad_(True)
    merged.eval()
    adapter = LoraAdapter(spec, config, state, head, trainable, sum(int(p.numel()) for p in merged.parameters()))
    setattr(merged, _ATTR, adapter)
    return merged, adapter


def unwrap(wrapped: Any) -> Any:
    """Take the adapters off without merging them (after a failed run): the model as it was wrapped."""
    model = wrapped.unload()
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def load_adapter(model: Any, directory: Path | str) -> Any:
    """Put a saved adapter (`LoraAdapter.save`, a cache entry's or an export's `adapter/`) on its base model.

    Args:
        model: the base token classifier (the pretrained encoder the adapter was trained from; its head is
            replaced by the adapter's).
        directory: the adapter directory.

    Returns:
        The peft model in eval mode (`merge_and_unload()` gives the plain model).
    """
    peft = require_peft()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = peft.PeftModel.from_pretrained(model, str(directory), is_trainable=False)
    wrapped.eval()
    return wrapped
