"""Where a build encodes: `--device auto|cpu|cuda`. The choice logic is checked with torch's CUDA probe
patched (this machine has no GPU), and the chosen device is the one the model is loaded on."""

from __future__ import annotations

import pytest
import torch

from indexer.engine import build_encoder
from indexer.errors import ModelError
from indexer.retrieval.embed import DEFAULT_MODEL, DEVICES, resolve_device


@pytest.fixture
def cuda(monkeypatch):
    """Sets whether torch sees a CUDA device."""

    def set_available(available: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)

    return set_available


@pytest.mark.parametrize(
    "requested, available, chosen",
    [
        ("auto", True, "cuda"),
        ("auto", False, "cpu"),
        ("cpu", True, "cpu"),
        ("cpu", False, "cpu"),
        ("cuda", True, "cuda"),
    ],
)
def test_device_auto_is_cuda_when_torch_sees_one_and_cpu_otherwise(cuda, requested, available, chosen):
    cuda(available)
    assert resolve_device(requested) == chosen


def test_asking_for_cuda_without_one_is_an_error_not_a_silent_cpu_build(cuda):
    cuda(False)
    with pytest.raises(ModelError, match="no CUDA device"):
        resolve_device("cuda")


def test_an_unknown_device_is_refused():
    with pytest.raises(ModelError, match="auto, cpu, cuda"):
        resolve_device("tpu")


def test_a_build_encoder_loads_the_model_on_the_chosen_device(cuda, monkeypatch):
    import sentence_transformers

    loaded_on = []

    class RecordingModel:
        max_seq_length = 256

        def __init__(self, path: str, device: str) -> None:
            loaded_on.append(device)

        def get_sentence_embedding_dimension(self) -> int:
            return 384

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", RecordingModel)
    cuda(True)
    assert build_encoder(DEFAULT_MODEL).device == "cuda"
    assert build_encoder(DEFAULT_MODEL, "cpu").device == "cpu"
    cuda(False)
    assert build_encoder(DEFAULT_MODEL).device == "cpu"
    assert loaded_on == ["cuda", "cpu", "cpu"]


def test_the_cli_offers_the_same_devices():
    from indexer.cli import build_parser

    build_command = build_parser()._subparsers._group_actions[0].choices["build"]
    device = next(action for action in build_command._actions if action.dest == "device")
    assert tuple(device.choices) == DEVICES and device.default == "auto"
