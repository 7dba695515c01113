"""The options of an experiment config on the command line, declared once for `train`, `eval` and `predict`.

`with_config` gives a command these options and calls it with one `config: ExperimentConfig` built from them by
`make_config` (which validates: a bad value exits 2 with its message), instead of each command repeating the
20-option block and spreading it into keyword lists. The defaults are the library's (`TrainOptions()`), so the
same options give the same config hash from the CLI, a grid spec or the dashboard.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional

import typer

from xner_core.cli.common import ProtocolOpt
from xner_core.training.settings import TrainOptions

_TRAIN_DEFAULTS = TrainOptions()  # the CLI defaults are the library's: same options, same hash

ModelOpt = typer.Option("e5-small", "--model", help="mbert, xlmr, e5-small, tiny, a hub id or a local directory")
SettingOpt = typer.Option("transfer", "--setting", help="native, transfer, multi_source, distill or tapt")
SourceOpt = typer.Option(None, "--source", help="source language (repeat for several)")
TargetOpt = typer.Option(..., "--target", help="target language")
SeedOpt = typer.Option(0, "--seed", help="training seed")
EpochsOpt = typer.Option(1, "--epochs", help="training epochs")
LrOpt = typer.Option(None, "--lr", help="learning rate (default: per model; 2e-4 for e5-small)")
BatchOpt = typer.Option(32, "--batch-size", help="training batch size")
MaxTrainOpt = typer.Option(5000, "--max-train", help="cap on training sentences per language (0 = all)")
MaxDevOpt = typer.Option(1000, "--max-dev", help="cap on dev sentences (0 = no dev evaluation)")
RobustOpt = typer.Option(None, "--robust", help="pgd, word-smoothing, fgm (= adversarial) or subtoken-noise "
                                                 "(= smoothing); Huang et al. 2021, see docs/training-methods.md")
BalancedOpt = typer.Option(False, "--balanced", help="multi_source: equal share per source language")
DistillWOpt = typer.Option("uniform", "--distill-weights", help="distill: uniform or similarity teacher weights")
TaptOpt = typer.Option(0, "--tapt-steps", help="tapt: masked-LM steps on target text before fine-tuning")
EarlyStopOpt = typer.Option(None, "--early-stopping", help="stop after N dev evaluations without a dev-F1 gain "
                                                          "(needs --max-dev > 0; default: off)")
WarmupOpt = typer.Option(_TRAIN_DEFAULTS.warmup_ratio, "--warmup", help="fraction of steps with linear LR warmup")
MaxLengthOpt = typer.Option(_TRAIN_DEFAULTS.max_length, "--max-length",
                            help="sub-tokens per sentence, [CLS]/[SEP] included")
FreezeOpt = typer.Option(_TRAIN_DEFAULTS.freeze_embeddings, "--freeze-embeddings",
                         help="keep the embedding layer frozen while fine-tuning")
RobustEpsOpt = typer.Option(_TRAIN_DEFAULTS.robust_epsilon, "--robust-epsilon",
                            help="--robust fgm/pgd: L2 radius of the embedding perturbation per sentence")
RobustRateOpt = typer.Option(_TRAIN_DEFAULTS.robust_rate, "--robust-rate",
                             help="--robust subtoken-noise/word-smoothing: probability of replacing a token/word")
AdapterOpt = typer.Option(_TRAIN_DEFAULTS.adapter, "--adapter",
                          help="none (train every weight) or lora (LoRA adapters on --lora-targets + the head, "
                               "merged into the cached model; docs/training-methods.md)")
LoraROpt = typer.Option(_TRAIN_DEFAULTS.lora_r, "--lora-r", help="--adapter lora: adapter rank r")
LoraAlphaOpt = typer.Option(_TRAIN_DEFAULTS.lora_alpha, "--lora-alpha",
                            help="--adapter lora: scaling alpha (updates scaled by alpha / r)")
LoraDropoutOpt = typer.Option(_TRAIN_DEFAULTS.lora_dropout, "--lora-dropout", help="--adapter lora: adapter dropout")
LoraTargetsOpt = typer.Option(_TRAIN_DEFAULTS.lora_targets, "--lora-targets",
                              help="--adapter lora: comma-separated Linear modules to adapt (BERT-like encoders: "
                                   "query,value; every Linear: query,key,value,dense)")
CheckpointOpt = typer.Option(None, "--checkpoint", help="an existing token-classification checkpoint (a "
                             "save_pretrained directory or hub id), evaluated as it is instead of --model")
RoleOpt = typer.Option(None, "--role", help="with --checkpoint: the side it plays, native (trained on the target) "
                       "or transfer (on --source); decides the data the perturbations call seen (default: transfer "
                       "when --source is given, else native)")


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


# The config's options in the order `--help` lists them; "target" is left out where the command names the target
# itself (predict's --lang).
CONFIG_PARAMS: tuple[inspect.Parameter, ...] = (
    _param("model", str, ModelOpt), _param("setting", str, SettingOpt),
    _param("source", Optional[list[str]], SourceOpt), _param("target", str, TargetOpt),
    _param("seed", int, SeedOpt), _param("epochs", int, EpochsOpt), _param("lr", Optional[float], LrOpt),
    _param("batch_size", int, BatchOpt), _param("max_train", int, MaxTrainOpt), _param("max_dev", int, MaxDevOpt),
    _param("robust", Optional[str], RobustOpt), _param("balanced", bool, BalancedOpt),
    _param("distill_weights", str, DistillWOpt), _param("tapt_steps", int, TaptOpt),
    _param("early_stopping", Optional[int], EarlyStopOpt), _param("warmup", float, WarmupOpt),
    _param("max_length", int, MaxLengthOpt), _param("freeze_embeddings", bool, FreezeOpt),
    _param("robust_epsilon", float, RobustEpsOpt), _param("robust_rate", float, RobustRateOpt),
    _param("adapter", str, AdapterOpt), _param("lora_r", int, LoraROpt), _param("lora_alpha", float, LoraAlphaOpt),
    _param("lora_dropout", float, LoraDropoutOpt), _param("lora_targets", str, LoraTargetsOpt),
    _param("data", str, ProtocolOpt),
)


def build_config(*, model: str, setting: str, source: Optional[list[str]], target: str, seed: int, data: str,
                 epochs: int, lr: Optional[float], batch_size: int, max_train: int, max_dev: int,
                 robust: Optional[str], balanced: bool, distill_weights: str, tapt_steps: int,
                 early_stopping: Optional[int], warmup: float, max_length: int, freeze_embeddings: bool,
                 robust_epsilon: float, robust_rate: float, adapter: str = _TRAIN_DEFAULTS.adapter,
                 lora_r: int = _TRAIN_DEFAULTS.lora_r, lora_alpha: float = _TRAIN_DEFAULTS.lora_alpha,
                 lora_dropout: float = _TRAIN_DEFAULTS.lora_dropout,
                 lora_targets: str = _TRAIN_DEFAULTS.lora_targets) -> Any:
    """The experiment config named by the command-line options (`make_config` validates them).

    Args:
        model ... lora_targets: the options of `CONFIG_PARAMS` (`--source` may repeat or hold commas;
            `--max-train 0` means every sentence).

    Returns:
        The ExperimentConfig.
    """
    from xner_core.runs.config import make_config

    sources = tuple(s for item in (source or []) for s in item.split(",") if s.strip())
    return make_config(model, target, setting, sources=sources, seed=seed, data=data, epochs=epochs, lr=lr,
                       batch_size=batch_size, max_train_sentences=max_train or None,
                       max_dev_sentences=max_dev, robust=robust, balanced_sampling=balanced,
                       distill_weights=distill_weights, tapt_steps=tapt_steps,
                       early_stopping_patience=early_stopping, warmup_ratio=warmup, max_length=max_length,
                       freeze_embeddings=freeze_embeddings, robust_epsilon=robust_epsilon, robust_rate=robust_rate,
                       adapter=adapter, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                       lora_targets=lora_targets)


def checkpoint_config(checkpoint: str, role: Optional[str], values: dict[str, Any]) -> Any:
    """The config of an existing checkpoint under test: model = the checkpoint, setting = its role.

    Args:
        checkpoint: the checkpoint's directory or hub id.
        role: native or transfer (None: transfer when sources are given, else native).
        values: the other config options as `build_config` takes them (`--model`/`--setting` must be left at
            their defaults: the checkpoint and the role name them).

    Returns:
        The ExperimentConfig; ConfigError for a clash or a role other than native/transfer.
    """
    from xner_core.errors import ConfigError

    if values["model"] != ModelOpt.default:
        raise ConfigError(f"give --checkpoint or --model, not both (got --model {values['model']!r})")
    if values["setting"] != SettingOpt.default:
        raise ConfigError("with --checkpoint, name its side with --role native|transfer instead of --setting")
    if values.get("adapter", AdapterOpt.default) != AdapterOpt.default:
        raise ConfigError("--adapter trains a model from --model; a --checkpoint is evaluated as it is (leave "
                          "--adapter out)")
    role = role or ("transfer" if values["source"] else "native")
    if role not in ("native", "transfer"):
        raise ConfigError(f"unknown role {role!r}; choose one of: native, transfer")
    return build_config(**{**values, "model": checkpoint, "setting": role})


def with_config(target_from: str | None = None, checkpoint: bool = False
                ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command taking `config` so that it takes the config's options instead, built once.

    The command's own arguments (positional) come first in `--help`, then the config's options, then its other
    options.

    Args:
        target_from: the command's own parameter naming the target language (predict's `lang`); None adds the
            `--target` option.
        checkpoint: also add `--checkpoint` and `--role` (an existing checkpoint under test, `checkpoint_config`);
            the command then takes `checkpoint: str | None` besides `config`.

    Returns:
        The decorator.
    """
    params = tuple(p for p in CONFIG_PARAMS if not (target_from and p.name == "target"))
    if checkpoint:
        params += (_param("checkpoint", Optional[str], CheckpointOpt), _param("role", Optional[str], RoleOpt))
    names = tuple(p.name for p in params)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)
        passed = {"config", "checkpoint"} if checkpoint else {"config"}  # given by the wrapper, not options
        own = [p for name, p in sig.parameters.items() if name not in passed]
        args = [p for p in own if isinstance(p.default, typer.models.ArgumentInfo)]
        rest = [p for p in own if p not in args]
        clash = set(names) & {p.name for p in own}
        if clash:
            raise TypeError(f"{fn.__name__}: parameters {sorted(clash)} clash with the config options")

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            target = kwargs[target_from] if target_from else values.pop("target")
            if not checkpoint:
                return fn(config=build_config(target=target, **values), **kwargs)
            path, role = values.pop("checkpoint"), values.pop("role")
            if path is None:
                if role is not None:
                    from xner_core.errors import ConfigError

                    raise ConfigError("--role names the side of a --checkpoint; give --checkpoint too "
                                      "(or --setting for a model trained from --model)")
                return fn(config=build_config(target=target, **values), checkpoint=None, **kwargs)
            return fn(config=checkpoint_config(path, role, {"target": target, **values}), checkpoint=path, **kwargs)

        merged = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in (*args, *params, *rest)]
        command.__signature__ = sig.replace(parameters=merged)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in merged}
        return command

    return decorate
