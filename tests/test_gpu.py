"""The CUDA path (marker `gpu`; run with `pytest -m gpu` on a machine whose torch sees a GPU).

Training with bf16 autocast, inference on the GPU agreeing with the CPU, and a model cached from the GPU that
loads back on the CPU. Skipped where CUDA is not available.
"""

from __future__ import annotations

import pytest
import torch

from xner_core.evaluation.modelstore import load_model, train_model
from xner_core.runs.config import make_config
from xner_core.inference.predict import predict_tags
from xner_core.numerics import resolve_device

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")]


def test_device_auto_picks_cuda():
    assert resolve_device(None).type == "cuda"


def test_train_on_gpu_cache_and_reload_on_cpu(wikiann_dir, tmp_path):
    config = make_config("tiny", "an", "transfer", sources=("es",), max_train_sentences=300, max_dev_sentences=50,
                         batch_size=16)
    trained = train_model(config, data_dir=wikiann_dir, cache=tmp_path, device="cuda", precision="bf16")
    assert trained.manifest["timings"]["precision"] == "bf16"
    assert next(trained.model.parameters()).device.type == "cuda"
    assert trained.manifest["hash"] == config.hash
    from xner_core.corpus.wikiann import load_wikiann

    test = load_wikiann("an", "test", wikiann_dir, limit=200)
    on_gpu = predict_tags(trained.model, trained.tokenizer, test, device="cuda", precision="bf16")
    on_cpu_model = load_model(config, cache=tmp_path, device="cpu")
    assert next(on_cpu_model.model.parameters()).device.type == "cpu"
    on_cpu = predict_tags(on_cpu_model.model, on_cpu_model.tokenizer, test, device="cpu", precision="fp32")
    # bf16 autocast on the GPU vs fp32 on the CPU: the tags of (almost) every word agree
    words = sum(len(s) for s in test)
    same = sum(a == b for x, y in zip(on_gpu, on_cpu) for a, b in zip(x, y))
    assert same / words > 0.98
