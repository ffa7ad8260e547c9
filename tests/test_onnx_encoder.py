"""The ONNX query path gives the same vectors as sentence-transformers, imports no torch, and refuses
models it cannot reproduce with `OnnxUnavailable` (which `query_encoder` turns into a torch fallback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.engine import query_encoder
from indexer.errors import ModelError
from indexer.retrieval.embed import DEFAULT_MODEL, SentenceTransformerEncoder, normalize, resolve_model_path
from indexer.retrieval.onnx_encoder import (
    CONFIG_FILE,
    OnnxEncoder,
    OnnxUnavailable,
    ensure_onnx_export,
    export_onnx,
    load_onnx_encoder,
    token_batches,
)

REPO = Path(__file__).parents[1]
DEV_QUERIES = REPO / "eval/dev_queries.jsonl"
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "sklearn")


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export per test session (~4 s once torch is loaded), in a cache of its own."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    export_onnx(DEFAULT_MODEL, cache)
    return cache


@pytest.fixture(scope="session")
def torch_encoder() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(DEFAULT_MODEL)


@pytest.fixture
def isolated_cache(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INDEXER_ONNX_CACHE", str(onnx_cache))
    monkeypatch.delenv("INDEXER_QUERY_BACKEND", raising=False)
    return onnx_cache


def long_answer_texts() -> list[str]:
    """Answer paragraphs of the bundled corpus joined into texts well past the model's 256 tokens."""
    markdown = (REPO / "data/ml_interview_qa.md").read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in markdown.split("\n\n") if p.strip() and not p.startswith(("**", "*solution"))]
    texts, current = [], ""
    for paragraph in paragraphs:
        current = f"{current}\n\n{paragraph}".strip()
        if len(current) > 2500:
            texts.append(current)
            current = ""
    return texts[:6]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)  # both sides are L2-normalised


def test_dev_queries_match_sentence_transformers(onnx_cache: Path, torch_encoder: SentenceTransformerEncoder) -> None:
    lines = DEV_QUERIES.read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["query"] for line in lines if line.strip()]
    assert len(queries) == 42
    onnx = load_onnx_encoder(DEFAULT_MODEL, export_if_missing=False, cache_dir=onnx_cache)
    one_at_a_time = np.vstack([onnx.encode([q]) for q in queries])
    batched = onnx.encode(queries)
    reference = torch_encoder.encode(queries)
    assert cosines(one_at_a_time, reference).min() >= 0.9999
    assert cosines(batched, reference).min() >= 0.9999


def test_long_texts_are_truncated_like_sentence_transformers(
    onnx_cache: Path, torch_encoder: SentenceTransformerEncoder
) -> None:
    from tokenizers import Tokenizer

    texts = long_answer_texts()
    untruncated = Tokenizer.from_file(str(Path(resolve_model_path(DEFAULT_MODEL)) / "tokenizer.json"))
    untruncated.no_truncation()
    assert len(texts) >= 3 and all(len(untruncated.encode(t).ids) > 256 for t in texts)
    onnx = load_onnx_encoder(DEFAULT_MODEL, threads=None, export_if_missing=False, cache_dir=onnx_cache)
    mixed = texts + ["short one", "why does my model overfit"]  # long and short in one padded batch
    assert cosines(onnx.encode(mixed), torch_encoder.encode(mixed)).min() >= 0.9999


def test_vectors_follow_the_contract(onnx_cache: Path) -> None:
    onnx = load_onnx_encoder(DEFAULT_MODEL, export_if_missing=False, cache_dir=onnx_cache)
    done: list[int] = []
    vectors = onnx.encode(["a", "bb", "ccc"], batch_size=2, progress=done.append)
    assert (onnx.model, onnx.dimension) == (DEFAULT_MODEL, 384)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384) and sum(done) == 3
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert onnx.encode([]).shape == (0, 384)


@pytest.mark.parametrize(
    "code",
    [
        "from indexer.retrieval.onnx_encoder import load_onnx_encoder\n"
        "load_onnx_encoder('all-MiniLM-L6-v2', export_if_missing=False).encode(['why does my model overfit'])",
        "from indexer.engine import query_encoder\nfrom indexer.retrieval.onnx_encoder import OnnxEncoder\n"
        "encoder = query_encoder('all-MiniLM-L6-v2')\nassert isinstance(encoder, OnnxEncoder)\n"
        "encoder.encode(['why does my model overfit'])",
    ],
)
def test_cached_onnx_query_imports_no_torch(onnx_cache: Path, code: str) -> None:
    env = {**os.environ, "INDEXER_ONNX_CACHE": str(onnx_cache), "INDEXER_QUERY_BACKEND": "auto"}
    report = f"\nimport sys\nprint(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code + report], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def unsupported_model(tmp_path: Path, change: str) -> Path:
    """A copy of the real model folder (weights linked, not copied) with one thing ONNX cannot reproduce."""
    source, folder = Path(resolve_model_path(DEFAULT_MODEL)), tmp_path / f"model-{change}"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")
    if change == "no-tokenizer-json":
        (folder / "tokenizer.json").unlink()
    elif change == "max-pooling":
        config = json.loads((folder / "1_Pooling/config.json").read_text())
        config.update(pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
        (folder / "1_Pooling/config.json").write_text(json.dumps(config))
    elif change == "dense-layer":
        modules = json.loads((folder / "modules.json").read_text())
        modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
        (folder / "modules.json").write_text(json.dumps(modules))
    return folder


@pytest.mark.parametrize(
    "change, says",
    [("no-tokenizer-json", "tokenizer.json"), ("max-pooling", "'max' pooling"), ("dense-layer", "Dense")],
)
def test_unsupported_model_raises_onnx_unavailable(tmp_path: Path, change: str, says: str) -> None:
    model = str(unsupported_model(tmp_path, change))
    with pytest.raises(OnnxUnavailable, match=says):
        load_onnx_encoder(model, cache_dir=tmp_path / "cache")
    assert isinstance(OnnxUnavailable("x"), ModelError)  # so a forced ONNX backend fails as a one-line CLI error
    assert ensure_onnx_export(model, tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()  # refused before anything was written


def test_query_encoder_falls_back_to_torch_for_an_unsupported_model(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = str(unsupported_model(tmp_path, "max-pooling"))
    assert isinstance(query_encoder(model), SentenceTransformerEncoder)
    monkeypatch.setenv("INDEXER_QUERY_BACKEND", "onnx")
    with pytest.raises(OnnxUnavailable):
        query_encoder(model)


def test_query_encoder_falls_back_to_torch_without_onnxruntime(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an install without onnxruntime looks like
    with pytest.raises(OnnxUnavailable, match="pip install onnxruntime"):
        load_onnx_encoder(DEFAULT_MODEL)
    assert isinstance(query_encoder(DEFAULT_MODEL), SentenceTransformerEncoder)


def test_query_backend_setting_is_obeyed(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(query_encoder(DEFAULT_MODEL), OnnxEncoder)
    monkeypatch.setenv("INDEXER_QUERY_BACKEND", "torch")
    assert isinstance(query_encoder(DEFAULT_MODEL), SentenceTransformerEncoder)
    monkeypatch.setenv("INDEXER_QUERY_BACKEND", "tensorflow")
    with pytest.raises(ModelError, match="INDEXER_QUERY_BACKEND"):
        query_encoder(DEFAULT_MODEL)


def test_export_is_reused_and_a_foreign_format_is_refused(onnx_cache: Path, tmp_path: Path) -> None:
    folder = ensure_onnx_export(DEFAULT_MODEL, onnx_cache)
    assert folder is not None and folder.parent == onnx_cache  # already there: no second export
    assert [p.name for p in onnx_cache.iterdir()] == [folder.name]  # no staging folder left behind
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("model.onnx"))
    (copy / "model.onnx").symlink_to(folder / "model.onnx")
    config = json.loads((copy / CONFIG_FILE).read_text())
    (copy / CONFIG_FILE).write_text(json.dumps({**config, "format": 99}))
    with pytest.raises(OnnxUnavailable, match="format 99"):
        load_onnx_encoder(DEFAULT_MODEL, cache_dir=tmp_path)


def _cost(lengths: list[int], batches: list[list[int]], run_cost: int) -> int:
    return sum(run_cost + len(batch) * max(lengths[i] for i in batch) for batch in batches)


def _least_cost(lengths: list[int], batch_size: int, run_cost: int) -> int:
    """Brute force over every way to cut the texts, shortest first, into batches."""
    ordered = sorted(lengths)
    best = {0: 0}
    for end in range(1, len(ordered) + 1):
        best[end] = min(
            best[start] + run_cost + (end - start) * ordered[end - 1] for start in range(max(0, end - batch_size), end)
        )
    return best[len(ordered)]


@pytest.mark.parametrize("seed", range(20))
def test_token_batches_cover_every_text_once_within_the_size_at_least_cost(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 40, size=int(rng.integers(1, 90))).tolist()
    batches = token_batches(lengths, batch_size=16, run_cost=14)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= 16 for batch in batches)
    assert _cost(lengths, batches, 14) == _least_cost(lengths, 16, 14)


def test_token_batches_cut_only_where_padding_costs_more_than_a_run() -> None:
    assert [len(b) for b in token_batches([7] * 40, batch_size=32)] in ([32, 8], [8, 32], [20, 20])
    # 16 texts of 3 tokens and 16 of 30: one batch pads 16 x 27 tokens, far more than one more run
    assert sorted(len(b) for b in token_batches([3] * 16 + [30] * 16, batch_size=32)) == [16, 16]
    assert token_batches([5, 6], batch_size=32) == [[0, 1]]  # one token of padding: not worth a run
    assert token_batches([], batch_size=32) == []


def test_vectors_do_not_depend_on_what_they_are_batched_with(onnx_cache: Path) -> None:
    """Texts of many lengths encoded together, alone and in reverse give the same bits: the batches
    pad each text to a different length, and padding is masked out."""
    lines = DEV_QUERIES.read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["query"] for line in lines if line.strip()] + ["why", "overfit"]
    onnx = load_onnx_encoder(DEFAULT_MODEL, export_if_missing=False, cache_dir=onnx_cache)
    together = onnx.encode(queries)
    alone = np.vstack([onnx.encode([q]) for q in queries])
    reversed_ = onnx.encode(queries[::-1])[::-1]
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, reversed_)


def test_both_encoders_hand_back_the_token_states_their_vectors_were_pooled_from(
    onnx_cache: Path, torch_encoder: SentenceTransformerEncoder
) -> None:
    # batched with texts of other lengths (padding), and one cut at the model's 256 tokens
    texts = ["Why does my model do great on train but badly on test?", "What is a view", long_answer_texts()[0]]
    onnx = load_onnx_encoder(DEFAULT_MODEL, export_if_missing=False, cache_dir=onnx_cache)
    for encoder in (onnx, torch_encoder):
        vectors, states = encoder.encode_with_states(texts)
        assert cosines(vectors, encoder.encode(texts)).min() >= 0.99999  # the same vectors, one run
        first = states[0]
        assert first is not None and [texts[0][a:b].lower() for a, b in first.spans][:4] == [
            "why",
            "does",
            "my",
            "model",
        ]
        for text, kept in zip(texts, states):
            assert kept is not None and kept.text.lower() == text.lower()  # ONNX lower-cases first, as the model does
            # each token names its own characters, in order ([CLS] and [SEP] are left out)
            assert (kept.spans[:, 1] > kept.spans[:, 0]).all() and (np.diff(kept.spans[:, 0]) > 0).all()
            assert len(kept.states) == len(kept.spans)
        assert states[2] is not None and len(states[2].spans) == 254  # cut where the model cut it: 256 less two
    # torch's states are sentence-transformers' own token embeddings, [CLS] and [SEP] cut off
    own = torch_encoder._model.encode(texts[:1], output_value="token_embeddings")[0].numpy()
    kept = torch_encoder.encode_with_states(texts[:1])[1][0]
    assert kept is not None and np.allclose(kept.states, own[1:-1], atol=1e-5)
    onnx_states, torch_states = onnx.encode_with_states(texts)[1], torch_encoder.encode_with_states(texts)[1]
    for a, b in zip(onnx_states, torch_states):
        assert a is not None and b is not None and np.array_equal(a.spans, b.spans)
        assert cosines(normalize(a.states), normalize(b.states)).min() >= 0.9999  # the same layer, two runtimes
