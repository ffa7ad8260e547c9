"""The embedded index on disk: atomic writes, verified loads, generations, the build lock.

Layout of an index folder (default `index/`):

    index/
      current -> build-20261125T154200-1234-ab12   (symlink, replaced atomically)
      build-20261125T154200-1234-ab12/
        manifest.json         format version, model, dimension, counts, source hashes, file checksums
        records.npy           the records (tables.py): short fields, and where their long texts end
        record_values.json    the distinct values of the short fields that are not numbers
        record_texts.bin      the long texts (question, answer, question_raw), UTF-8, back to back
        rows.npy              row i of the vector index -> (record position, field, text key)
        vectors.npy           the question and answer vectors (float32): exact scores, and exact search when flat
        ivf.faiss             index_type ivf only: an inverted-file index over half-precision copies, for
                              nearest rows in indexes too big to scan on every query
        vectors.faiss         index_type hnsw only, instead of vectors.npy: a FAISS HNSW index holding them
        lexical.npz           the lexical index's arrays (lexical.py), so no query process re-reads every text
        parse_map.npz         how each Markdown source was parsed (documents/incremental.py), for the next build
        written.json          each file's size, mtime, ctime and inode right after the build wrote it
      .lock                   held by a build (a second build waits for it)

Formats 1 and 2 held the records as JSON (`records.jsonl`, then `records.json`) and the rows in
`rows.json`; they are still read, so the next build reuses their vectors. Format 3 loads 100k entries
without making a Record or decoding an answer: a query decodes only the entries it shows.

A build writes `build-….tmp/`, renames it to `build-…/` and then swaps `current` with one rename, so
readers always see a complete generation (old or new) and a killed build leaves the previous one
untouched. The two newest generations are kept so a reader that resolved `current` just before a swap
can finish; older ones and leftover `.tmp` folders are removed by the next build.

faiss is imported lazily: reading the manifest costs no heavy import. Loading maps every file into
memory read-only; arrays are views of the mapped files (the vectors: one full-precision copy, shared
with the page cache), and FAISS maps the inverted file itself. A generation's files are never rewritten
once written (a build makes a new generation), so what was verified stays what is read.

Verification: a file whose stat (size, mtime, ctime, inode) is still what `written.json` recorded when
the build wrote it (and hashed it for the manifest) is trusted without reading it; any other file is
checked against the manifest's sha256 before anything reads it. Any write to a file changes its ctime,
which no tool can set back, and a copy has another inode, so every change made through the file system
is still caught; damage below it (a failing disk) is caught by `verify_index` (`python -m indexer
info`), which hashes everything. This assumes a local POSIX file system: on some network and FUSE
mounts, or FAT, ctime is not a change time, and there only `info` is a full check. Hashing every
file on every load cost ~10 s of a cold search at a million entries (4.7 GB); trusting the stamps
makes a load read only the pages a query touches. A load that had to hash files (a copied or restored
index) records their stamps once they are found whole, so it happens once, not on every load.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import mmap
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np

from indexer.documents.records import Record, RecordId, field_values
from indexer.errors import IndexCorruptError, IndexerError, IndexMissingError, IndexStaleError, IndexVersionError
from indexer.retrieval.lexical import LexicalIndex, LexicalVersionError
from indexer.stores.base import RowOrigins, StoredRows
from indexer.stores.tables import (
    TABLE_READERS,
    Buffer,
    RowTable,
    has_tables,
    npy_view,
    npz_views,
    table_files,
    tables_from,
)
from indexer.stores.vectors import (
    FP16_SCAN_MIN_ROWS,
    IVF_RETRAIN_SHARE,
    best_inner_products,
    exact_nearest_rows,
    ivf_lists,
    ivf_nearest_rows,
    list_count,
    nan_where_absent,
    paired_dots,
    set_probes,
    stored_vectors,
    updated_ivf,
    vector_index,
)

if TYPE_CHECKING:
    import faiss

    from indexer.documents.incremental import ParseMap

FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)  # formats 1 and 2 still seed a rebuild that reuses their vectors
VECTOR_FILES = ("vectors.npy", "vectors.faiss")
IVF_FILE = "ivf.faiss"
PARSE_MAP_FILE = "parse_map.npz"  # how the records were parsed (documents/incremental.py), for the next build
WRITTEN_FILE = "written.json"  # the files' stat right after the build wrote them
CURRENT = "current"
_KEEP_GENERATIONS = 2
_PAIRED_QUERIES = 16_384  # queries whose candidates `field_cosines_paired` scores at once: ~1.7M pairs, ~100 MB
_T = TypeVar("_T")


@dataclass
class StoredIndex:
    """A loaded, verified generation: manifest, records, rows, vectors and the FAISS index.

    `faiss_index` finds nearest rows. For a flat generation it is made on first use (small indexes are
    scored exhaustively and never need it): an exact scan below `FP16_SCAN_MIN_ROWS` rows, above that a
    scan of half-precision copies, twice as fast, whose candidates search.py then scores exactly.
    """

    manifest: dict
    records: Sequence[Record]  # a RecordTable when loaded from format 3
    rows: RowTable
    vectors: np.ndarray  # (rows, dimension) float32, normalised
    faiss_index: faiss.Index | None
    path: Path
    lexical: LexicalIndex | None = None  # None when the generation did not store one (format 1)
    signature: tuple = ()  # `generation_signature` when loading began
    parse_map_data: Buffer | None = None  # parse_map.npz, verified, decoded only by `parse_map`
    _building: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.question_row, self.answer_row = self.rows.record_rows(len(self.records))

    def is_current(self) -> bool:
        """Still the folder's current generation, its files unchanged since they were verified.

        Stat calls only, cheap enough for every page rerun: builds never rewrite a file (they make a
        new generation), so a different link or size or mtime means a rebuild or damage, and the
        caller should load again (which verifies the checksums).
        """
        return generation_signature(self.path.parent) == self.signature

    @functools.cached_property
    def position_of(self) -> dict[RecordId, int]:
        """Record id → position, made on first use from the ids alone."""
        ids = field_values(self.records, "id")
        return dict(zip(ids, range(len(ids))))

    # ---- what search needs from a store (a second store implements these three and `records`) ----

    @property
    def row_count(self) -> int:
        return len(self.rows.positions)

    def field_cosines(self, query_vectors: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best question and answer cosines over the query vectors for these record positions
        (answer is NaN where there is none)."""
        return self.field_cosines_each([query_vectors], positions)[0]

    def field_cosines_each(
        self, query_vector_sets: Sequence[np.ndarray], positions: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`field_cosines` of each set of query vectors; for many sets the rows are read from memory once
        (`best_inner_products`), not once per set."""
        if not query_vector_sets:
            return []
        answer_rows = self.answer_row[positions]
        has_answer = answer_rows >= 0
        if len(positions) * 4 > len(self.records):
            # most of the index: one product over every row beats copying the chosen rows out first
            best = best_inner_products(self.vectors, query_vector_sets)
            question, answered = best[:, self.question_row[positions]], best[:, answer_rows[has_answer]]
        else:
            question = best_inner_products(self.vectors[self.question_row[positions]], query_vector_sets)
            answered = best_inner_products(self.vectors[answer_rows[has_answer]], query_vector_sets)
        return list(zip(question, nan_where_absent(answered, has_answer)))

    def field_cosines_paired(self, query_vectors: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See `LoadedIndex.field_cosines_paired`: the (query, candidate row) pairs of `_PAIRED_QUERIES`
        queries at a time scored together (`paired_dots`), where one product per query took 1.95 s for
        the hints of 10,064 missing entries at 100,000 entries. The blocks bound the memory: a million
        entries have ~100,000 missing ones, with 10 million pairs."""
        cosines = np.full((2, *positions.shape), np.nan, dtype=np.float32)
        for start in range(0, len(positions), _PAIRED_QUERIES):
            chosen = positions[start : start + _PAIRED_QUERIES]
            rows = np.stack([self.question_row[chosen], self.answer_row[chosen]])
            rows[:, chosen < 0] = -1
            field, owner, column = np.nonzero(rows >= 0)
            queries = np.asarray(query_vectors[start : start + _PAIRED_QUERIES], dtype=np.float32)
            cosines[field, owner + start, column] = paired_dots(
                self.vectors, rows[field, owner, column], queries, owner
            )
        return cosines[0], cosines[1]

    def nearest_positions(self, query_vectors: np.ndarray, depth: int) -> np.ndarray:
        """Record positions owning the `depth` nearest rows of any query vector (FAISS)."""
        if self.faiss_index is None:
            with self._building:  # app sessions share one loaded index: build the scan copy once
                if self.faiss_index is None:
                    scan = "fp16" if self.row_count >= FP16_SCAN_MIN_ROWS else "flat"
                    self.faiss_index = vector_index(self.vectors, scan, self.vectors.shape[1])
        _, rows = self.faiss_index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), depth)
        rows = rows[rows >= 0]  # FAISS pads with -1 when it finds fewer
        return self.rows.positions[rows]

    def nearest_positions_each(self, query_vectors: np.ndarray, depth: int) -> list[np.ndarray]:
        """Per query vector, the record positions owning its `depth` nearest rows: for many queries at once
        (a hint for every missing entry), with matrix products rather than one FAISS search per query."""
        queries = np.ascontiguousarray(query_vectors, dtype=np.float32)
        depth = min(depth, self.row_count)
        index_type = self.manifest.get("index_type")
        if index_type == "ivf":
            rows = ivf_nearest_rows(self.faiss_index, self.vectors, queries, depth)
        elif index_type == "hnsw":
            assert self.faiss_index is not None  # a hnsw generation loads with its FAISS index
            rows = self.faiss_index.search(queries, depth)[1]
        else:
            rows = exact_nearest_rows(self.vectors, queries, depth)
        return [self.rows.positions[found[found >= 0]] for found in rows]

    def question_vector(self, position: int) -> np.ndarray:
        return self.vectors[self.question_row[position]]

    def entry_vectors(self) -> np.ndarray:
        """One normalised vector per record: the mean of its question and answer vectors (the question
        alone when the answer is missing), for topics and near-duplicates."""
        vectors = self.vectors[self.question_row].copy()
        has_answer = self.answer_row >= 0
        vectors[has_answer] += self.vectors[self.answer_row[has_answer]]
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def stored_rows(self, model_fp: str) -> StoredRows | None:
        """The rows and their vectors, for the next build with the same model. The vectors are the caller's
        own: a copy-on-write mapping of vectors.npy, whose pages stay the page cache's until a row is
        written (at 100,000 entries, copying them out took 0.7 s), else a copy."""
        if self.manifest.get("model_fingerprint") != model_fp:
            return None
        return StoredRows(self.rows, self._own_vectors(), self.question_row, self.answer_row)

    def _own_vectors(self) -> np.ndarray:
        if "vectors.npy" in self.manifest.get("files", {}):
            try:
                mapped = _map_verified(
                    self.path, "vectors.npy", self.manifest, _read_written(self.path), mmap.ACCESS_COPY
                )
                vectors = npy_view(mapped, np.float32, 2)
                if vectors.shape == self.vectors.shape and vectors.flags.writeable:
                    return vectors
            except (OSError, ValueError, IndexCorruptError):
                pass  # gone or changed since the load: the loaded vectors are still these
        return np.array(self.vectors)

    @functools.cached_property
    def parse_map(self) -> ParseMap | None:
        """How the records were parsed, for the next build to read again only what changed: decoded on
        first use from the verified file (None when the generation has none, or one this version does not
        read or that does not hold together: the next build then parses in full)."""
        if self.parse_map_data is None:
            return None
        from indexer.documents.incremental import ParseMap  # the parser, only for a build

        try:
            return ParseMap.from_arrays(npz_views(self.parse_map_data))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return None


def current_path(index_dir: Path) -> Path | None:
    link = index_dir / CURRENT
    if not link.is_symlink() and not link.exists():
        return None
    return index_dir / os.readlink(link) if link.is_symlink() else link


def generation_signature(index_dir: Path) -> tuple:
    """The current generation's name and each of its files' (name, size, mtime); () when there is none."""
    return _signature(current_path(index_dir))


def _signature(generation: Path | None) -> tuple:
    if generation is None:
        return ()
    try:
        with os.scandir(generation) as entries:
            files = sorted(  # not the stamps: a load that re-stamps a copied index changes no file it reads
                (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                for entry in entries
                if WRITTEN_FILE not in entry.name
            )
    except OSError:
        return ()
    return (generation.name, *files)


def read_manifest(index_dir: Path) -> dict | None:
    """The current generation's manifest, or None when there is no index yet (no heavy imports)."""
    generation = current_path(index_dir)
    return None if generation is None else _generation_manifest(index_dir, generation)


def _generation_manifest(index_dir: Path, generation: Path) -> dict:
    """`generation`'s own manifest. Not `read_manifest`: `current` may point elsewhere by now, and the
    stamps would let one generation's files pass under another's manifest."""
    try:
        manifest = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"index at {index_dir} is corrupt: manifest.json is missing") from None
    except (ValueError, UnicodeDecodeError):
        raise IndexCorruptError(f"index at {index_dir} is corrupt: manifest.json is not valid JSON") from None
    return check_format(manifest, str(index_dir))


def check_format(manifest: object, location: str, newest: int = FORMAT_VERSION) -> dict:
    """The manifest if this version can read it (`newest`: the format the store writes); a newer format
    is refused (never overwritten silently)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format_version"), int):
        raise IndexCorruptError(f"index at {location} is corrupt: its manifest has no format_version")
    if manifest["format_version"] > newest:
        raise IndexVersionError(
            f"index at {location} was written by a newer version of this tool (format "
            f"{manifest['format_version']} > {newest}); upgrade, or replace it with: python -m indexer build"
        )
    return manifest


def load_index(index_dir: Path) -> StoredIndex:
    """Load the current generation, verified (files the build's stamps vouch for, or their checksums)."""
    return _on_current(index_dir, _load_generation)


def _on_current(index_dir: Path, read: Callable[[Path, Path], _T]) -> _T:
    """`read(index_dir, generation)` on the current generation; read again if a build swapped
    generations meanwhile and removed the one being read (builds keep the two newest)."""
    for attempt in range(3):
        generation = current_path(index_dir)
        if generation is None:
            raise IndexMissingError(f"no index at {index_dir}; run: python -m indexer build")
        try:
            return read(index_dir, generation)
        except FileNotFoundError:
            if current_path(index_dir) == generation or attempt == 2:
                raise IndexCorruptError(f"index at {index_dir} is corrupt: a file is missing") from None
    raise AssertionError("unreachable")


def _load_generation(index_dir: Path, generation: Path) -> StoredIndex:
    signature = _signature(generation)  # before reading: a change while loading shows up later
    manifest = _generation_manifest(index_dir, generation)
    if manifest["format_version"] not in READABLE_FORMATS:
        raise IndexStaleError(f"index at {index_dir} has an old format ({manifest['format_version']})")
    listed = manifest.get("files", {})
    if not isinstance(listed, dict) or not all(isinstance(entry, dict) for entry in listed.values()):
        raise IndexCorruptError(f"index at {index_dir} is corrupt: its manifest's file table is malformed")
    vector_file = next((name for name in VECTOR_FILES if name in listed), None)
    if vector_file is None or not has_tables(listed, manifest["format_version"]):
        raise IndexCorruptError(f"index at {index_dir} is corrupt: its manifest does not list its files")
    written = _read_written(generation)
    hashed: dict[str, list[int]] = {}
    try:
        readers = _readers(generation, manifest["dimension"])
        read = _read_verified_files(generation, listed, manifest, readers, written, hashed)
        records, rows = tables_from(read)
        # what `_readers` made of each file: casts, since that dict holds a different type per name
        vectors, faiss_index = cast("tuple[np.ndarray, faiss.Index | None]", read[vector_file])
        if IVF_FILE in listed:
            faiss_index = cast("faiss.Index", read[IVF_FILE])
        lexical = cast("LexicalIndex | None", read.get("lexical.npz"))
    except (ValueError, KeyError, TypeError, RuntimeError, EOFError) as exc:
        raise IndexCorruptError(f"index at {index_dir} is corrupt: {type(exc).__name__}") from None
    if (
        len(records) != manifest.get("record_count")
        or len(rows.fields) != len(vectors)
        or (lexical is not None and lexical.size != len(records))
        or not _rows_fit(rows, len(records))
    ):
        raise IndexCorruptError(f"index at {index_dir} is corrupt: counts do not match the manifest")
    if hashed:
        _restamp(generation, {**written, **hashed})
    parse_map_data = cast("Buffer | None", read.get(PARSE_MAP_FILE))
    return StoredIndex(manifest, records, rows, vectors, faiss_index, generation, lexical, signature, parse_map_data)


def _rows_fit(rows: RowTable, record_count: int) -> bool:
    return len(rows.positions) == len(rows.fields) == len(rows.keys) and bool(
        ((rows.positions >= 0) & (rows.positions < record_count)).all()
    )


def _readers(generation: Path, dimension: int) -> dict[str, Callable[[Buffer], object]]:
    """File name → what its verified bytes become."""
    return {
        **TABLE_READERS,
        "vectors.npy": lambda data: _load_vectors(data, "vectors.npy", dimension),
        "vectors.faiss": lambda data: _load_vectors(data, "vectors.faiss", dimension),
        IVF_FILE: lambda data: _load_ivf(generation),  # FAISS maps the file itself
        "lexical.npz": lexical_from_blob,
    }


def _read_verified_files(
    generation: Path,
    names: Iterable[str],
    manifest: dict,
    readers: dict[str, Callable[[Buffer], object]],
    written: dict,
    hashed: dict[str, list[int]],
) -> dict[str, object]:
    """Each file mapped read-only, checked against the manifest's sha256 unless `written` vouches for it,
    then read; two files at a time, largest first. Hashing lets go of the GIL, so while one thread hashes
    the vectors the other hashes and decodes the rest. At 100k entries (0.57 GB) a whole load with every
    file hashed takes ~0.35 s; copying each file into memory, hashing and decoding it one after another
    (format 2) took ~1.7 s. The stamps of the files hashed go into `hashed`."""

    def read(name: str) -> object:
        data = _map_verified(generation, name, manifest, written, hashed=hashed)
        return readers[name](data) if name in readers else data

    ordered = sorted(names, key=lambda name: (generation / name).stat().st_size, reverse=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(ordered, pool.map(read, ordered)))


def _map_verified(
    generation: Path,
    name: str,
    manifest: dict,
    written: dict,
    access: int = mmap.ACCESS_READ,
    hashed: dict[str, list[int]] | None = None,
) -> Buffer:
    """A file of the generation mapped (read-only, or `mmap.ACCESS_COPY`: writes stay in memory), once its
    stamp or its checksum vouches for it. A file found whole by its checksum gets its stamp (taken before
    hashing: a later write shows as another ctime) in `hashed`."""
    with open(generation / name, "rb") as fh:
        stat = os.fstat(fh.fileno())
        data = mmap.mmap(fh.fileno(), 0, access=access) if stat.st_size else b""
    if written.get(name) != file_stamp(stat):
        _check_digest(generation, name, manifest, hashlib.sha256(data).hexdigest())
        if hashed is not None:
            hashed[name] = file_stamp(stat)
    return data


def file_stamp(stat: os.stat_result) -> list[int]:
    """What `written.json` keeps of a file. Any write changes its ctime (which no tool sets back) and a
    copy is another inode, so an equal stamp means the very bytes the build wrote and hashed."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _write_stamps(folder: Path, stamps: dict[str, list[int]], name: str = WRITTEN_FILE) -> bool:
    """`written.json` (or `name`), with an mtime after every stamped file's ctime. File times come from a
    clock that ticks every few milliseconds: a write in the same tick as the build's would keep the stamped
    ctime, but a write after this file's mtime cannot. Loads trust only stamps older than that mtime.
    False when the clock did not get there (no file is left: every load hashes every file)."""
    newest = max((stamp[2] for stamp in stamps.values()), default=0)
    path = folder / name
    with open(path, "wb") as fh:  # not `_write_file`: nothing here goes into a manifest to be hashed
        fh.write(json.dumps(stamps).encode())
        os.fsync(fh.fileno())
    for _ in range(1000):  # 2 s at most
        if os.stat(path).st_mtime_ns > newest:
            return True
        time.sleep(0.002)
        os.utime(path)  # its mtime to now
    path.unlink()
    return False


def _restamp(generation: Path, stamps: dict[str, list[int]]) -> None:
    """After a load found files whole by their checksums (a copied or restored index: other inodes), record
    their stamps so that later loads trust them instead of hashing every file again (at a million entries
    4.7 GB, ~10 s of every cold search). Replaced atomically; best effort: a read-only folder, or a
    generation a build removes meanwhile, keeps hashing."""
    temporary = f".{WRITTEN_FILE}.{secrets.token_hex(4)}"
    try:
        if _write_stamps(generation, stamps, temporary):
            os.replace(generation / temporary, generation / WRITTEN_FILE)  # keeps the mtime written above
    except OSError:
        with contextlib.suppress(OSError):
            (generation / temporary).unlink()


def _read_written(generation: Path) -> dict:
    """The stamps `written.json` vouches for: those of files changed last before it was written. {} (hash
    every file) for a generation without one, or with a damaged one."""
    path = generation / WRITTEN_FILE
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
        written_at = os.stat(path).st_mtime_ns
    except (OSError, ValueError):
        return {}
    if not isinstance(written, dict):
        return {}
    return {name: stamp for name, stamp in written.items() if _stamped_before(stamp, written_at)}


def _stamped_before(stamp: object, moment_ns: int) -> bool:
    """A well-formed stamp whose ctime is earlier than `moment_ns`."""
    return (
        isinstance(stamp, list)
        and len(stamp) == 4
        and all(isinstance(value, int) for value in stamp)
        and stamp[2] < moment_ns
    )


def verify_index(index_dir: Path) -> None:
    """Hash every file of the current generation against the manifest, stamps or not: what a load
    trusts, checked byte for byte (reads the whole index). IndexCorruptError when a file fails."""
    _on_current(index_dir, _verify_generation)


def _verify_generation(index_dir: Path, generation: Path) -> None:
    manifest = _generation_manifest(index_dir, generation)
    listed = manifest.get("files", {})
    if not isinstance(listed, dict):
        raise IndexCorruptError(f"index at {index_dir} is corrupt: its manifest's file table is malformed")
    for name in listed:
        _map_verified(generation, name, manifest, written={})


def _check_digest(generation: Path, name: str, manifest: dict, digest: str) -> None:
    if digest != manifest.get("files", {}).get(name, {}).get("sha256"):
        raise IndexCorruptError(f"index at {generation.parent} is corrupt: {name} fails its checksum; rebuild it")


def _load_vectors(data: Buffer, name: str, dimension: int) -> tuple[np.ndarray, faiss.Index | None]:
    """(vectors, FAISS index or None) from a vector file. `.npy` vectors are a read-only view of the
    file's bytes (no copy); a serialized FAISS index brings its own storage, viewed the same way."""
    if name == "vectors.faiss":
        import faiss

        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return stored_vectors(index, dimension), index
    vectors = npy_view(data, np.float32, 2)
    if vectors.shape[1] != dimension:
        raise ValueError("vectors.npy does not hold rows of the index's dimension")
    return vectors, None


def lexical_from_blob(data: Buffer) -> LexicalIndex | None:
    """The saved lexical index, its arrays viewed in `data`; None when another tokenizer version wrote it;
    ValueError when damaged."""
    try:
        return LexicalIndex.from_arrays(npz_views(data))
    except LexicalVersionError:
        return None  # the engine rebuilds it from the records
    except (IndexError, KeyError) as exc:
        raise ValueError(f"lexical index unreadable: {type(exc).__name__}") from None


def _load_ivf(generation: Path):
    """The verified inverted file, read by FAISS from the file itself with its lists memory-mapped, not
    copied: under 1 ms instead of ~0.1 s at 100k entries (deserializing bytes we hold: ~0.2 s), and
    searches as fast."""
    import faiss

    path = generation / IVF_FILE
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    except RuntimeError:
        if not path.exists():
            raise FileNotFoundError(path) from None
        raise
    invlists = faiss.extract_index_ivf(index).invlists
    assert invlists is not None  # an IVF index read from a file always holds its lists
    lists = faiss.downcast_InvertedLists(invlists)
    if isinstance(lists, faiss.OnDiskInvertedLists):
        lists.prefetch_nthread = 0  # else every search starts up to 32 threads to touch lists already in memory
    return set_probes(index)


# A file's contents as one buffer, or as parts written one after another: the vectors are never copied
# into one bytes object (at a million entries that copy would be 2.8 GB, and FAISS's bytes 1.4 GB more).
Blob = Buffer | memoryview | np.ndarray | tuple[bytes | memoryview, ...]


def _vector_blobs(
    vectors: np.ndarray, index_type: str, dimension: int, origins: RowOrigins | None
) -> tuple[dict[str, Blob | FaissFile], dict | None]:
    """File name → bytes of the vectors: plain `.npy` (and an IVF index for `ivf`), or a FAISS HNSW index;
    and for `ivf`, what the manifest says of the inverted file. FAISS's serialized bytes are written from
    its own array, the vectors after an `.npy` header."""
    if index_type == "hnsw":
        return {"vectors.faiss": FaissFile(vector_index(vectors, index_type, dimension))}, None
    array = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dimension)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    blobs: dict[str, Blob | FaissFile] = {"vectors.npy": (header.getvalue(), array.reshape(-1).view(np.uint8).data)}
    if index_type != "ivf":
        return blobs, None
    ivf, about = _inverted_file(array, origins)
    blobs[IVF_FILE] = FaissFile(ivf)
    return blobs, about


def _inverted_file(vectors: np.ndarray, origins: RowOrigins | None) -> tuple[faiss.Index, dict]:
    """The inverted file over `vectors`: the previous generation's, updated (`vectors.updated_ivf`), when
    it has one over the same model's rows with as many lists and few rows changed since it was trained;
    else trained anew. With what the manifest records: its lists, and rows changed since training."""
    previous = origins.generation if origins is not None else None
    if isinstance(previous, StoredIndex) and IVF_FILE in previous.manifest.get("files", {}):
        assert origins is not None
        taken = np.unique(origins.origin[origins.origin >= 0])
        changed = (
            int(previous.manifest.get("ivf", {}).get("changed_rows", 0))
            + (previous.row_count - len(taken))  # rows gone
            + int((origins.origin < 0).sum())  # rows new
        )
        ivf = _writable_ivf(previous) if changed <= IVF_RETRAIN_SHARE * len(vectors) else None
        if (
            ivf is not None
            and ivf.d == vectors.shape[1]
            and ivf.ntotal == previous.row_count
            and list_count(ivf) == ivf_lists(len(vectors))
        ):
            return updated_ivf(ivf, vectors, origins.origin), {"lists": list_count(ivf), "changed_rows": changed}
    ivf = vector_index(vectors, "ivf", vectors.shape[1])
    return ivf, {"lists": list_count(ivf), "changed_rows": 0}


def _writable_ivf(generation: StoredIndex) -> faiss.Index | None:
    """A generation's inverted file read into memory (its loaded one maps the file read-only), checked as a
    load checks it; None when it is gone or damaged (the caller trains a new one)."""
    import faiss

    try:
        _map_verified(generation.path, IVF_FILE, generation.manifest, _read_written(generation.path))
        return faiss.read_index(str(generation.path / IVF_FILE))  # like `_load_ivf`, once verified
    except (OSError, RuntimeError, IndexCorruptError):
        return None


def _parts(blob: Blob) -> tuple[memoryview, ...]:
    parts = blob if isinstance(blob, tuple) else (blob,)
    # ndarray has the buffer protocol; numpy's stubs declare its __buffer__ only for Python >= 3.12
    return tuple(memoryview(part).cast("B") for part in parts)  # type: ignore[arg-type]


def _file_entry(blob: Blob) -> dict:
    """The manifest's record of a file: its sha256 and size."""
    digest = hashlib.sha256()
    for part in _parts(blob):
        digest.update(part)
    return {"sha256": digest.hexdigest(), "bytes": sum(len(part) for part in _parts(blob))}


def lexical_blob(lexical: LexicalIndex) -> bytes:
    return npz_blob(lexical.to_arrays())


def npz_blob(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed `.npz` of these arrays (read back as views by `tables.npz_views`)."""
    stream = io.BytesIO()
    np.savez(stream, **arrays)  # type: ignore[arg-type]  # stub: a **dict might fill allow_pickle: bool
    return stream.getvalue()


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index folder; a second build waits for the first to finish."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fh = open(index_dir / ".lock", "a+")
    except OSError as exc:  # a file where the folder should be, no permission, a read-only disk
        raise IndexerError(f"cannot keep an index in {index_dir}: {exc.strerror or type(exc).__name__}") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_index(
    index_dir: Path,
    records: Sequence[Record],
    rows: RowTable,
    vectors: np.ndarray,
    manifest: dict,
    lexical: LexicalIndex,
    parse_map: ParseMap | None = None,
    origins: RowOrigins | None = None,
) -> Path:
    """Write a new generation and make it current atomically. Call with `build_lock` held. `origins`: where
    the rows come from in the previous generation, so that its inverted file can be updated."""
    _remove_leftovers(index_dir)
    name = f"build-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(2)}"
    tmp = index_dir / f"{name}.tmp"
    tmp.mkdir(parents=True)
    vector_blobs, ivf = _vector_blobs(vectors, manifest["index_type"], manifest["dimension"], origins)
    blobs: dict[str, Blob | FaissFile] = {
        **table_files(records, rows),
        **vector_blobs,
        "lexical.npz": lexical_blob(lexical),
    }
    if parse_map is not None:
        blobs[PARSE_MAP_FILE] = npz_blob(parse_map.to_arrays())
    # two files at a time, largest first: hashing, writing and syncing one lets go of the GIL
    names = sorted(blobs, key=lambda file_name: -_size(blobs[file_name]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        written = dict(zip(names, pool.map(lambda file_name: _write_file(tmp / file_name, blobs[file_name]), names)))
    manifest = {
        **manifest,
        **({"ivf": ivf} if ivf is not None else {}),
        "format_version": FORMAT_VERSION,
        "files": {file_name: written[file_name] for file_name in blobs},
    }
    _write_file(tmp / "manifest.json", json.dumps(manifest, indent=2).encode())
    # Taken after every file is written and synced; renaming the folder below changes none of them.
    _write_stamps(tmp, {file_name: file_stamp(os.stat(tmp / file_name)) for file_name in blobs})
    final = index_dir / name
    os.rename(tmp, final)
    link_tmp = index_dir / f".{CURRENT}.{secrets.token_hex(4)}"
    os.symlink(name, link_tmp)
    os.replace(link_tmp, index_dir / CURRENT)  # the commit point
    _fsync_dir(index_dir)
    _remove_old_generations(index_dir)
    return final


def _write_file(path: Path, data: Blob | FaissFile) -> dict:
    """Write a file and sync it; return what the manifest records of it (`_file_entry`). A FAISS index is
    written by FAISS, then read back from the page cache to be hashed (no copy of it in memory)."""
    if isinstance(data, FaissFile):
        import faiss

        faiss.write_index(data.index, str(path))
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
            if not os.fstat(fh.fileno()).st_size:
                return _file_entry(b"")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as written:
                return _file_entry(written)
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as fh:
        for part in _parts(data):
            for start in range(0, len(part), _CHUNK):  # hashed while still in cache, then written
                chunk = part[start : start + _CHUNK]
                digest.update(chunk)
                fh.write(chunk)
            size += len(part)
        fh.flush()
        os.fsync(fh.fileno())
    return {"sha256": digest.hexdigest(), "bytes": size}


_CHUNK = 4 << 20


@dataclass(frozen=True)
class FaissFile:
    """A FAISS index to be written to a file as FAISS writes it."""

    index: faiss.Index


def _size(data: Blob | FaissFile) -> int:
    if isinstance(data, FaissFile):
        return data.index.ntotal * data.index.d * 2  # a guess, for the order of writing
    return sum(len(part) for part in _parts(data))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_leftovers(index_dir: Path) -> None:
    """Half-written generations and link temporaries from killed builds (we hold the lock)."""
    for path in index_dir.iterdir():
        if path.name.endswith(".tmp") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{CURRENT}.") and path.is_symlink():
            path.unlink(missing_ok=True)


def _remove_old_generations(index_dir: Path) -> None:
    current = os.readlink(index_dir / CURRENT)
    generations = sorted(
        (p for p in index_dir.iterdir() if p.name.startswith("build-") and p.is_dir() and not p.name.endswith(".tmp")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    keep = {current} | {p.name for p in generations[:_KEEP_GENERATIONS]}
    for path in generations:
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


class FaissStore:
    """The embedded store: one index folder on disk (implements `base.Store`)."""

    format_version = FORMAT_VERSION

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.location = str(self.index_dir)

    def read_manifest(self) -> dict | None:
        return read_manifest(self.index_dir)

    def load(self) -> StoredIndex:
        return load_index(self.index_dir)

    def verify(self) -> None:
        verify_index(self.index_dir)

    def lock(self) -> contextlib.AbstractContextManager:
        return build_lock(self.index_dir)

    def write(
        self,
        records: Sequence[Record],
        rows: RowTable,
        vectors: np.ndarray,
        manifest: dict,
        lexical: LexicalIndex,
        *,
        parse_map: ParseMap | None = None,
        origins: RowOrigins | None = None,
    ) -> None:
        write_index(self.index_dir, records, rows, vectors, manifest, lexical, parse_map, origins)
