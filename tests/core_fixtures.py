"""Shared fixtures for the core tests: a deterministic fake encoder, small documents, a real-model index.

Registered from conftest.py through `pytest_plugins`.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "ml_interview_qa.md"
DEV_QUERIES = ROOT / "eval" / "dev_queries.jsonl"  # the labelled dev queries, kept in the repository


class FakeEncoder:
    """Deterministic 16-d vectors from word hashes: equal texts get equal vectors, shared words raise cosine."""

    model = "fake-model"
    dimension = 16

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts, batch_size=32, progress=None):
        self.encoded.extend(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.sha256(word.encode()).digest()
                out[i, digest[0] % self.dimension] += 1.0 + digest[1] / 255
            out[i, 0] += 1e-3  # no all-zero rows
        if progress:
            progress(len(texts))
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class ExplodingEncoder:
    """An encoder that fails mid-build, as a killed or crashing model would."""

    dimension = 16

    def encode(self, texts, batch_size=32, progress=None):
        raise RuntimeError("killed mid-embedding")


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled corpus that a test may edit."""
    copy = tmp_path / "corpus.md"
    shutil.copyfile(CORPUS, copy)
    return copy


@pytest.fixture(scope="session")
def real_index(tmp_path_factory):
    """The bundled corpus indexed once per session with the real model (all-MiniLM-L6-v2)."""
    from indexer.engine import QAIndex

    index_dir = tmp_path_factory.mktemp("real") / "index"
    return QAIndex.open([CORPUS], index_dir)
