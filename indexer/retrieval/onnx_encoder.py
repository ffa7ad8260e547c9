"""Queries → vectors without torch: the model's transformer exported once to ONNX, run by onnxruntime.

    export_onnx("all-MiniLM-L6-v2")                     # once, needs torch: ~4 s, ~90 MB on disk
    load_onnx_encoder("all-MiniLM-L6-v2").encode(["why does my model overfit"])

An export lives in `<cache>/<model fingerprint>/` (cache: $INDEXER_ONNX_CACHE, else
~/.cache/qa-indexer/onnx): `model.onnx`, the model's `tokenizer.json` and `onnx_config.json`
(format, pooling, max_seq_length, dimension). Vectors follow the contract in `embed.py`; the export
checks its own output against sentence-transformers before it is published, so a cached export is
one that matched.

Importing this module and loading a cached export imports onnxruntime, tokenizers and numpy only:
never torch, transformers, sentence-transformers or scikit-learn. It deliberately supports only
local model folders made of Transformer → mean or CLS Pooling → (Normalize) with a `tokenizer.json`;
anything else raises `OnnxUnavailable`, and the caller uses torch instead.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from indexer.errors import ModelError
from indexer.retrieval.embed import (
    Progress,
    SentenceTransformerEncoder,
    TokenStates,
    model_fingerprint,
    normalize,
    resolve_model_path,
)

EXPORT_FORMAT = 1
ONNX_FILE, TOKENIZER_FILE, CONFIG_FILE = "model.onnx", "tokenizer.json", "onnx_config.json"
OPSET = 17
RUNTIME_PACKAGES = ("onnxruntime", "tokenizers")  # all a query needs; export also needs torch and onnx
MIN_EXPORT_COSINE = 0.9999  # the export's self-check: below this the ONNX path would change results
_MODULE_KINDS = ("Transformer", "Pooling", "Normalize")  # the only sentence-transformers modules reproduced here
# The older boolean form of the pooling config → the names sentence-transformers uses now.
_POOLING_KEYS = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max", "weightedmean_tokens": "weightedmean"}


class OnnxUnavailable(ModelError):
    """The ONNX path cannot serve this model (no onnxruntime, unsupported model, failed export): use torch."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("INDEXER_ONNX_CACHE") or Path.home() / ".cache" / "qa-indexer" / "onnx")


def export_dir(model: str, cache_dir: Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / model_fingerprint(model)


def model_spec(model: str) -> dict:
    """What the ONNX path must reproduce for `model` (pooling, lower-casing), read from its folder
    without torch; raises `OnnxUnavailable` when the model is not one it can reproduce."""
    path = Path(resolve_model_path(model))
    if not path.is_dir():
        raise OnnxUnavailable(f"ONNX export needs a local model folder; {model!r} is not one")
    modules = _read_json(path / "modules.json", model)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if not kinds or kinds[0] != "Transformer" or "Pooling" not in kinds or any(k not in _MODULE_KINDS for k in kinds):
        raise OnnxUnavailable(
            f"model {model!r} has modules {kinds}; ONNX export supports Transformer, Pooling, Normalize"
        )
    pooling_dir = path / modules[kinds.index("Pooling")].get("path", "1_Pooling")
    pooling = _pooling_mode(_read_json(pooling_dir / "config.json", model))
    if pooling not in ("mean", "cls"):
        raise OnnxUnavailable(f"model {model!r} uses {pooling!r} pooling; ONNX export supports mean and cls")
    if not (path / TOKENIZER_FILE).is_file():
        raise OnnxUnavailable(f"model {model!r} has no {TOKENIZER_FILE} (a fast tokenizer); ONNX export needs one")
    st_config = _read_json(path / "config_sentence_transformers.json", model, required=False)
    if st_config.get("default_prompt_name") or st_config.get("prompts", {}).get("query"):
        raise OnnxUnavailable(f"model {model!r} adds a prompt to queries; the ONNX path does not")
    bert_config = _read_json(path / "sentence_bert_config.json", model, required=False)
    return {"path": path, "pooling": pooling, "do_lower_case": bool(bert_config.get("do_lower_case"))}


def _pooling_mode(config: dict) -> str:
    """ "mean", "cls", ... or several joined by "+"; reads both the newer and the older boolean form."""
    mode = config.get("pooling_mode")
    if mode is not None:  # sentence-transformers ≥ 6: a name or a list of names
        modes = [mode] if isinstance(mode, str) else [str(m) for m in mode]
    else:
        modes = [
            _POOLING_KEYS.get(k.removeprefix("pooling_mode_"), k.removeprefix("pooling_mode_"))
            for k, on in config.items()
            if k.startswith("pooling_mode_") and on
        ]
    return "+".join(modes) or "none"


def _read_json(path: Path, model: str, required: bool = True) -> Any:
    """The file's JSON (a list for modules.json, an object for the others); {} for a missing optional file."""
    if not path.is_file():
        if required:
            raise OnnxUnavailable(f"{path} is missing; ONNX export needs a sentence-transformers model folder")
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OnnxUnavailable(f"cannot read {path}: {exc}") from None


def export_onnx(model: str, cache_dir: Path | None = None) -> Path:
    """Export `model` once into the cache and return its folder; an existing export is reused.

    Needs torch and sentence-transformers (imported here only). Written into a temporary folder,
    checked against sentence-transformers, then renamed into place, so readers never see half an export.
    """
    spec = model_spec(model)  # refuse unsupported models before paying for the torch import
    target = export_dir(model, cache_dir)
    if (target / CONFIG_FILE).is_file():
        return target
    _require("onnx", "onnxruntime", "tokenizers")  # onnx: the exporter; onnxruntime: the self-check, and any use
    reference = SentenceTransformerEncoder(model)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _write_export(reference, spec, staging)
            _check_export(reference, staging)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        if (target / CONFIG_FILE).is_file():  # another process published the same export first: keep theirs
            return target
        raise OnnxUnavailable(f"cannot write the ONNX export to {target.parent}: {exc}") from None
    return target


def _write_export(reference: SentenceTransformerEncoder, spec: dict, folder: Path) -> None:
    import torch

    # the bare Hugging Face model (torch types a submodule's attribute as Tensor | Module); pooling is redone in numpy
    transformer = cast(torch.nn.Module, reference._model[0].auto_model).eval()
    accepted = inspect.signature(transformer.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]

    class KeywordForward(torch.nn.Module):
        # transformers 5.x's forward() rejects these as positional arguments, and the tracer passes positionals.
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.transformer(**dict(zip(names, inputs))).last_hidden_state

    shutil.copyfile(spec["path"] / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    config = {
        "format": EXPORT_FORMAT,
        "model": reference.model,
        "pooling": spec["pooling"],
        "do_lower_case": spec["do_lower_case"],
        "max_seq_length": reference.max_tokens,
        "dimension": reference.dimension,
        "inputs": names,
        "opset": OPSET,
    }
    # Two lengths, so the traced graph takes the padded-attention-mask branch that real batches need.
    tokenizer, pad_id = _tokenizer(folder, config)
    example = _feed(tokenizer.encode_batch(["an example", "a slightly longer example sentence"]), pad_id)
    try:
        # The tracer warns about shape checks that are constant for this graph; the self-check vouches for it.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                KeywordForward(),
                tuple(torch.from_numpy(example[n]) for n in names),
                str(folder / ONNX_FILE),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types for an architecture it cannot trace
        first = str(exc).strip().split("\n")[0][:200]
        raise OnnxUnavailable(f"cannot export {reference.model!r} to ONNX: {first}") from None
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _check_export(reference: SentenceTransformerEncoder, folder: Path) -> None:
    probes = [
        "why does my model overfit",
        "What is the difference between L1 and L2 regularization?",
        " ".join(["Gradient descent updates every weight against its gradient."] * 60),
    ]  # past max_seq_length
    cosines = np.sum(reference.encode(probes) * OnnxEncoder(folder, reference.model).encode(probes), axis=1)
    if cosines.min() < MIN_EXPORT_COSINE:
        raise OnnxUnavailable(
            f"the ONNX export of {reference.model!r} differs from sentence-transformers "
            f"(cosine {cosines.min():.6f}); using torch"
        )


def _require(*names: str) -> None:
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise OnnxUnavailable(f"the ONNX path needs the package {name} (pip install {name})")


def _tokenizer(folder: Path, config: dict):
    """The model's tokenizer, truncating at max_seq_length as sentence-transformers does, and its pad id.
    tokenizer.json files often carry their own settings (all-MiniLM-L6-v2: truncate and pad to 128); here
    nothing is padded by the tokenizer: `token_batches` groups texts by length and `_feed` pads each batch."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer.enable_truncation(config["max_seq_length"])
    pad_id = int((tokenizer.padding or {}).get("pad_id", 0))
    tokenizer.no_padding()
    return tokenizer, pad_id


def _feed(encodings: list, pad_id: int) -> dict[str, np.ndarray]:
    """The model's inputs for tokenized texts, padded to the longest of them."""
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


# What one more run of the model costs, in tokens of a batch: on this machine (2 cores, AVX2) a run of
# one thread took ~3 ms plus ~0.21 ms per token of every text, padding included (the weights are read
# from memory once a run). So a batch is worth cutting where that saves more padding than ~14 tokens.
RUN_COST_TOKENS = 14


def token_batches(lengths: Sequence[int], batch_size: int, run_cost: int = RUN_COST_TOKENS) -> list[list[int]]:
    """Indices of texts of these token lengths in batches of at most `batch_size`, of the least cost:
    `run_cost` per batch plus every text padded to its batch's longest. The texts are taken shortest
    first and cut where it pays (dynamic programming over the cut points): queries and their leftover
    words vary from 3 to 15 tokens, and 32 of them padded to the longest wasted 40-65 % of the work."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    best = [0] + [0] * len(order)  # best[j]: least cost of the first j texts in order
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]
        best[end], cut[end] = min(
            (best[start] + run_cost + (end - start) * longest, start) for start in range(max(0, end - batch_size), end)
        )
    batches, end = [], len(order)
    while end:
        batches.append(order[cut[end] : end])
        end = cut[end]
    return batches[::-1]


class OnnxEncoder:
    """An `Encoder` on an exported model: onnxruntime for the transformer, numpy for pooling."""

    def __init__(self, folder: Path, model: str, threads: int | None = 1) -> None:
        _require(*RUNTIME_PACKAGES)
        import onnxruntime

        config = _read_json(folder / CONFIG_FILE, model)
        if config.get("format") != EXPORT_FORMAT:
            raise OnnxUnavailable(
                f"the ONNX export in {folder} has format {config.get('format')!r}, "
                f"not {EXPORT_FORMAT}; delete that folder to export again"
            )
        self.model, self.dimension, self.folder = model, int(config["dimension"]), folder
        self._config = config
        self._tokenizer, self._pad_id = _tokenizer(folder, config)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime picks one per physical core
        options.inter_op_num_threads = 1  # the graph is one chain of layers: nothing to run side by side
        try:
            self._session = onnxruntime.InferenceSession(
                str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a missing or damaged file
            raise OnnxUnavailable(f"cannot load {folder / ONNX_FILE}: {str(exc).strip()[:200]}") from None
        self._inputs = [i.name for i in self._session.get_inputs()]

    def encode(self, texts: list[str], batch_size: int = 32, progress: Progress | None = None) -> np.ndarray:
        """Unit vectors of `texts`, in order, run in batches of similar token length (`token_batches`)."""
        return self._run(texts, batch_size, progress, keep_states=False)[0]

    def encode_with_states(self, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, list[TokenStates | None]]:
        """`encode`, with each text's token states: the session's output before pooling, and the tokens'
        characters as the tokenizer gives them."""
        return self._run(texts, batch_size, None, keep_states=True)

    def _run(
        self, texts: list[str], batch_size: int, progress: Progress | None, keep_states: bool
    ) -> tuple[np.ndarray, list[TokenStates | None]]:
        if self._config["do_lower_case"]:
            texts = [text.lower() for text in texts]
        encodings = self._tokenizer.encode_batch(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        states: list[TokenStates | None] = [None] * len(texts)
        for batch in token_batches([len(e.ids) for e in encodings], batch_size):
            feed = _feed([encodings[i] for i in batch], self._pad_id)
            hidden = self._session.run(None, {name: feed[name] for name in self._inputs})[0]
            out[batch] = self._pooled(hidden, feed["attention_mask"])
            if keep_states:
                for row, i in enumerate(batch):
                    keep = ~np.asarray(encodings[i].special_tokens_mask, dtype=bool)
                    spans = np.asarray(encodings[i].offsets, dtype=np.int64).reshape(-1, 2)
                    states[i] = TokenStates(texts[i], hidden[row, : len(keep)][keep], spans[keep])
            if progress:
                progress(len(batch))
        return normalize(out), states

    def _pooled(self, hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if self._config["pooling"] == "cls":
            return hidden[:, 0]
        mask = attention_mask[:, :, None].astype(np.float32)
        return (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)


def load_onnx_encoder(
    model: str, threads: int | None = 1, export_if_missing: bool = True, cache_dir: Path | None = None
) -> OnnxEncoder:
    """The ONNX encoder for `model` from the cache, exporting it first when missing (that needs torch).

    threads=1 suits single queries; None uses every core. Raises `OnnxUnavailable` when the ONNX path
    cannot serve this model, so the caller can use `SentenceTransformerEncoder` instead.
    """
    _require(*RUNTIME_PACKAGES)
    folder = export_dir(model, cache_dir)
    if not (folder / CONFIG_FILE).is_file():
        if not export_if_missing:
            raise OnnxUnavailable(f"no ONNX export of {model!r} in {folder.parent}")
        folder = export_onnx(model, cache_dir)
    return OnnxEncoder(folder, model, threads)


def ensure_onnx_export(model: str, cache_dir: Path | None = None) -> Path | None:
    """Best effort, for after a build: export now so the first query needs no torch. None when unsupported."""
    try:
        return export_onnx(model, cache_dir)
    except ModelError:  # OnnxUnavailable included: queries will simply use torch
        return None
