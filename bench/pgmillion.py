"""The PostgreSQL store at a million entries: build, memory, disk, cold and warm search, recall@10.

    nice -n 19 .venv/bin/python bench/pgmillion.py --data /work/pgbench-data/million   # 1,000,000 entries
    .venv/bin/python bench/pgmillion.py --entries 100000 --vectors sample --data /work/pgbench-data/s100k
    .venv/bin/python bench/pgmillion.py --entries 30000 --data /work/pgbench-data/small  # a quick check

Builds ONLY the PostgreSQL store, in a pgserver started in `--data` (deleted at the end unless --keep;
a run with --keep and the same entries reuses the index and its build figures). Vectors (N entries are
2N rows of 384-d, seeded) are `--vectors clusters`, bench/pgstore.py's synthetic clustered ones, with
queries near stored questions, so nothing is embedded; or `--vectors sample`, bench/million.py's (each
row one of 2,000 real embeddings plus noise), with bench/run.py's text queries embedded for real: the
vectors the folder store's million-entry figures were measured on. Give each kind its own --data.
The build runs in a child process through `PgStore.write` (COPY of the tables, then the HNSW
index, one transaction), with maintenance_work_mem given in the URL (`--build-memory`, what a user
does for a graph this size: docs/storage.md). Measured:

- build: the child's write, split by a sampler that polls pg_stat_progress_create_index each second
  (table load = up to the HNSW phase, ±1 s); peak RSS of the client during the write (the data it
  writes is in memory before); peak of the summed PSS (and RSS) of the server's processes, sampled;
- disk: the tables and indexes (pg_relation sizes) and the data folder (with WAL);
- cold search: a fresh process that opens the store and answers one text query through `QAIndex.search`
  (import, load of the records and lexical index with the ONNX encoder loading meanwhile, as `search`
  does, then the search), median of 3 with its peak RSS;
- warm: the dense search path (`candidate_positions` then `score_entries`, k=10) over the query
  vectors, p50/p95, at several hnsw.ef_search; and `QAIndex.search` over bench/run.py's 200 text
  queries at the store's default ef_search;
- recall@10: top 10 entries of the dense path against an exact ranking of every entry (numpy, best of
  question and answer cosine); and the same over the "cluster" neighbours only, those of the exact top
  10 with cosine >= 0.3 (a query's cluster mates; the rest are the best of ~0 cosines, noise);
- from 100,000 rows the store also keeps an inverted file searched in the client (postgres.py): the
  figures above are taken with it left unread (`read_ivf=False`); then, on a second load, the time
  to read it (waited for), the dense path over it (row "client ivf") and the text queries with it
  (the text figures of the database path are kept as `hnsw_text_*` in the JSON).

Not a test: nothing is asserted. Prints JSON, then markdown table rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from million import sample_vectors, warm_queries  # noqa: E402
from pgstore import queries as query_vectors  # noqa: E402
from pgstore import synthetic, top_ids  # noqa: E402
from run import noisy_copies, percentile  # noqa: E402
from run import queries as text_queries  # noqa: E402

K = 10
CLUSTER_COSINE = 0.3
NAME = "million"
COLD_QUERY = "overfitting on the training set"


def with_options(url: str, **settings: str) -> str:
    """The URL with server settings for its sessions (libpq `options`), e.g. maintenance_work_mem."""
    options = " ".join(f"-c {name.replace('__', '.')}={value}" for name, value in settings.items())
    return f"{url}{'&' if '?' in url else '?'}options={quote(options)}"


def status_mb(field: str, pid: str = "self") -> float:
    """VmRSS, VmHWM, … of a process from /proc, in MiB (0 when it has gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((line for line in text.splitlines() if line.startswith(field + ":")), f"{field}: 0 kB")
    return int(line.split()[1]) / 1024


def pss_mb(pid: str) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:")) / 1024


def server_processes(postmaster: int) -> list[str]:
    """The postmaster and its children (backends, parallel workers, background processes)."""
    found = [str(postmaster)]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if parent == str(postmaster):
                found.append(entry.name)
    return found


class ServerWatch(threading.Thread):
    """Each second: the summed PSS and RSS of the server's processes, and the index build's phase
    (first and last time seen); a progress line to stderr every minute of an index build."""

    def __init__(self, url: str, postmaster: int) -> None:
        super().__init__(daemon=True)
        self.url, self.postmaster = url, postmaster
        self.peak_pss = self.peak_rss = 0.0
        self.phases: dict[str, list[float]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        last_note = 0.0
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.wait(1.0):
                processes = server_processes(self.postmaster)
                self.peak_pss = max(self.peak_pss, sum(pss_mb(p) for p in processes))
                self.peak_rss = max(self.peak_rss, sum(status_mb("VmRSS", p) for p in processes))
                now = time.time()
                for phase, done, total in conn.execute(
                    "SELECT phase, tuples_done, tuples_total FROM pg_stat_progress_create_index"
                ):
                    self.phases.setdefault(phase, [now, now])[1] = now
                    if now - last_note >= 60:
                        last_note = now
                        print(
                            f"{time.strftime('%H:%M:%S')} {phase}: {done:,} of {total:,} tuples, server PSS "
                            f"{self.peak_pss:,.0f} MB peak, load {os.getloadavg()[0]:.1f}",
                            file=sys.stderr,
                            flush=True,
                        )

    def stop(self) -> None:
        self.done.set()
        self.join()


# ---- the child processes -------------------------------------------------------------------------


def sample_data(entries: int, query_count: int) -> tuple[np.ndarray, np.ndarray]:
    """bench/million.py's vectors for the same entries: row r (question and answer of each entry in
    turn) is real embedding r mod 2,000 plus noise; and the text queries, embedded for real."""
    from indexer.retrieval.embed import SentenceTransformerEncoder

    turns = noisy_copies(sample_vectors(), 2 * entries)
    vectors = np.vstack([turns[0::2], turns[1::2]])  # the store's order: every question, then every answer
    del turns
    texts = list(dict.fromkeys(text_queries()))[:query_count]
    return vectors, SentenceTransformerEncoder().encode(texts)


def build_child(url: str, entries: str, query_count: str, work: str, kind: str, hnsw_min_rows: str) -> None:
    """Make the synthetic index, save the queries with their exact top 10, write the store."""
    from indexer.retrieval.lexical import LexicalIndex
    from indexer.stores.postgres import PgStore

    started = time.perf_counter()
    records, rows, vectors, manifest = synthetic(int(entries))
    if kind == "sample":
        del vectors  # 3 GB at a million entries, not needed while the others are made
        vectors, found = sample_data(int(entries), int(query_count))
    else:
        found = query_vectors(vectors, int(query_count))
    n = len(records)
    exact, scores = [], []
    for start in range(0, len(found), 50):  # an entry's score is its best field cosine
        batch = found[start : start + 50].T
        entry = np.maximum(vectors[:n] @ batch, vectors[n:] @ batch)
        best = np.argpartition(-entry, K - 1, axis=0)[:K]
        exact.append(best.T)
        scores.append(np.take_along_axis(entry, best, axis=0).T)
    np.savez(Path(work) / "queries.npz", queries=found, exact=np.vstack(exact), scores=np.vstack(scores))
    lexical = LexicalIndex.from_records(records)
    times = {"entries": n, "rows": len(vectors), "prepare_s": time.perf_counter() - started}
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS from here on is the write's
    times["client_rss_before_write_mb"] = status_mb("VmRSS")
    print(json.dumps({"write_started": time.time()}), flush=True)
    mark = time.perf_counter()
    store = PgStore(url, NAME, **({} if hnsw_min_rows == "default" else {"hnsw_min_rows": int(hnsw_min_rows)}))
    with store.lock():
        store.write(records, rows, vectors, manifest, lexical)
    times["write_s"] = time.perf_counter() - mark
    times["client_peak_rss_write_mb"] = status_mb("VmHWM")
    print(json.dumps(times), flush=True)


def cold_child(url: str) -> None:
    """Open the store and answer one text query, as a fresh `search` process does."""
    started = time.perf_counter()
    from indexer.defaults import DEFAULT_MODEL
    from indexer.engine import QAIndex, preloaded_encoder, query_encoder
    from indexer.stores.postgres import PgStore

    phases = {"import_s": time.perf_counter() - started}
    mark = time.perf_counter()
    encoder = preloaded_encoder(query_encoder, DEFAULT_MODEL)  # loads while the store does, as `search` does
    loaded = PgStore(url, NAME).load()
    phases["load_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    result = QAIndex(loaded, DEFAULT_MODEL, encoder).search(COLD_QUERY)
    phases["search_s"] = time.perf_counter() - mark
    print(json.dumps({**phases, "hits": len(result.nearest), "peak_rss_mb": status_mb("VmHWM")}))


CHILDREN = {"_build": build_child, "_cold": cold_child}


def child(name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, name, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=os.environ
    )


# ---- the measurements ----------------------------------------------------------------------------


def build(
    url: str, postmaster: int, entries: int, query_count: int, work: Path, kind: str, hnsw_min_rows: int | None
) -> dict:
    watch = ServerWatch(url, postmaster)
    watch.start()
    threshold = "default" if hnsw_min_rows is None else str(hnsw_min_rows)
    proc = child("_build", url, str(entries), str(query_count), str(work), kind, threshold)
    assert proc.stdout is not None
    lines = [json.loads(line) for line in proc.stdout]
    if proc.wait():
        watch.stop()
        raise RuntimeError("the build child failed (its stderr is above)")
    watch.stop()
    write_started, result = lines[0]["write_started"], lines[-1]
    hnsw = watch.phases.get("building index: loading tuples")  # pgvector's HNSW phase (btree's differ)
    if hnsw:
        result["table_load_s"] = hnsw[0] - write_started
        result["hnsw_s"] = hnsw[1] - hnsw[0]
    result.update(server_peak_pss_mb=watch.peak_pss, server_peak_rss_mb=watch.peak_rss, phases=watch.phases)
    return result


def disk(url: str, data: Path) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        (generation,) = conn.execute(
            "SELECT id FROM indexer_generations WHERE index_name = %s AND is_current", (NAME,)
        ).fetchone() or (None,)
        rows, records = f"indexer_rows_{generation}", f"indexer_records_{generation}"
        sizes = {
            f"{kind}_mb": size / 2**20
            for kind, size in conn.execute(
                "SELECT am.amname, pg_relation_size(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = %s::regclass",
                (rows,),
            )
        }
        ((table, total_records, database),) = conn.execute(
            "SELECT pg_table_size(%s::regclass), pg_total_relation_size(%s::regclass), "
            "pg_database_size(current_database())",
            (rows, records),
        )
    folder = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    return {
        **sizes,
        "rows_table_mb": table / 2**20,
        "records_table_mb": total_records / 2**20,
        "database_mb": database / 2**20,
        "data_folder_mb": folder / 2**20,
    }


def cold(url: str, runs: int = 3) -> dict:
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = child("_cold", url)
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError("the cold search child failed (its stderr is above)")
        found.append({**json.loads(out.strip().splitlines()[-1]), "wall_s": time.perf_counter() - started})
    middle = sorted(found, key=lambda run: run["wall_s"])[len(found) // 2]
    return {
        "cold_search_s": middle["wall_s"],
        "cold_phases": middle,
        "cold_peak_rss_mb": max(r["peak_rss_mb"] for r in found),
    }


def dense(index, work: Path, ef_values: list[int]) -> list[dict]:
    """Warm latency and recall@10 of the dense search path at each ef_search."""
    saved = np.load(work / "queries.npz")
    found, exact, scores = saved["queries"], saved["exact"], saved["scores"]
    ids = [{index.records[p].id for p in row} for row in exact]
    cluster = [
        {index.records[p].id for p, s in zip(row, s_row) if s >= CLUSTER_COSINE} for row, s_row in zip(exact, scores)
    ]
    results = []
    for ef in ef_values:
        index.ef_search = ef
        for query in found[:5]:  # warm up: caches, the SET
            top_ids(index, query, K)
        times, answers = [], []
        for query in found:
            started = time.perf_counter()
            answers.append(set(top_ids(index, query, K)))
            times.append(time.perf_counter() - started)
        results.append(
            {
                "ef_search": ef,
                "warm_p50_ms": 1000 * percentile(times, 0.5),
                "warm_p95_ms": 1000 * percentile(times, 0.95),
                "recall_at_10": float(np.mean([len(a & e) / K for a, e in zip(answers, ids)])),
                "cluster_recall": float(np.mean([len(a & c) / len(c) for a, c in zip(answers, cluster) if c])),
                "worst_query_recall": float(min(len(a & e) / K for a, e in zip(answers, ids))),
            }
        )
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return results


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        CHILDREN[sys.argv[1]](*sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, required=True, help="folder for the pgserver data and the queries")
    parser.add_argument("--queries", type=int, default=200, help="query vectors for warm latency and recall")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200, 400, 1000])
    parser.add_argument("--build-memory", default="5GB", help="maintenance_work_mem for the build (in the URL)")
    parser.add_argument("--keep", action="store_true", help="keep the server's data (a rerun reuses the index)")
    parser.add_argument(
        "--hnsw-min-rows",
        type=int,
        help="the store's HNSW threshold (default: the store's); above the row count no graph is built "
        "(minutes, not ~40 at a million), and the database path is exact",
    )
    parser.add_argument(
        "--vectors",
        choices=["clusters", "sample"],
        default="clusters",
        help="clusters: bench/pgstore.py's (N/10 clusters at cosine ≈0); sample: bench/million.py's (noisy "
        "copies of 2,000 real embeddings, the text queries embedded), as the folder store was measured",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pgserver

    from indexer.stores.postgres import PgStore

    args.data.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(args.data / "pgdata", cleanup_mode=None if args.keep else "delete")
    url = server.get_uri()
    row: dict = {
        "entries": args.entries,
        "vectors": args.vectors,
        "load_before": os.getloadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M"),
    }
    try:
        saved = args.data / f"build-{'' if args.vectors == 'clusters' else 'sample-'}{args.entries}.json"
        manifest = PgStore(url, NAME).read_manifest()
        if saved.exists() and manifest and manifest["record_count"] == args.entries:
            built = {**json.loads(saved.read_text()), "build_reused": True}
        else:
            memory = with_options(url, maintenance_work_mem=args.build_memory)
            built = build(
                memory, server.get_pid(), args.entries, args.queries, args.data, args.vectors, args.hnsw_min_rows
            )
            saved.write_text(json.dumps(built))
        row.update(built)
        row["load_after_build"] = os.getloadavg()
        row.update(disk(url, args.data / "pgdata"))
        row.update(cold(url))
        from indexer.defaults import DEFAULT_MODEL
        from indexer.engine import QAIndex

        index = PgStore(url, NAME, read_ivf=False).load()  # nearest rows from the database: HNSW or exact
        row["index_type"], row["default_ef_search"] = index.manifest["index_type"], index.ef_search
        row["dense"] = dense(index, args.data, args.ef_search)
        index.ef_search = row["default_ef_search"]
        text = warm_queries(QAIndex(index, DEFAULT_MODEL), text_queries())
        index.close()
        if "ivf" in (manifest := PgStore(url, NAME).read_manifest() or {}):
            index = PgStore(url, NAME).load()  # the inverted file, read on a thread of its own, searched here
            mark = time.perf_counter()
            ready = index.client_ivf(wait=True) is not None
            row["client_ivf"] = {"read_s": time.perf_counter() - mark, "ready": ready, "lists": manifest["ivf"]}
            row["client_ivf"]["peak_rss_mb"] = status_mb("VmHWM")
            row["dense"] += [{**d, "ef_search": "client ivf"} for d in dense(index, args.data, [index.ef_search])]
            row.update({f"hnsw_text_{k}": v for k, v in text.items()})
            text = warm_queries(QAIndex(index, DEFAULT_MODEL), text_queries())
            index.close()
        row.update({f"text_{k}": v for k, v in text.items()})
        row["load_after"] = os.getloadavg()
    finally:
        if not args.keep:
            server.cleanup()
            shutil.rmtree(args.data / "pgdata", ignore_errors=True)
    print(json.dumps(row))
    print(table(row))
    return 0


def table(row: dict) -> str:
    """Markdown rows: the build and search figures, then one row per ef_search."""
    lines = [
        "| entries | rows | write s (table load, HNSW) | client peak MB | server peak PSS MB (RSS) "
        "| disk MB (table, HNSW, data folder) | cold search s (load) | cold peak MB | text query p50 / p95 ms |",
        "|---:|---:|---|---:|---:|---|---|---:|---|",
        f"| {row['entries']:,} | {row['rows']:,} | {row['write_s']:.0f} ({row.get('table_load_s', 0):.0f}, "
        f"{row.get('hnsw_s', 0):.0f}) | {row['client_peak_rss_write_mb']:,.0f} | {row['server_peak_pss_mb']:,.0f} "
        f"({row['server_peak_rss_mb']:,.0f}) | {row['rows_table_mb']:,.0f}, {row.get('hnsw_mb', 0):,.0f}, "
        f"{row['data_folder_mb']:,.0f} | {row['cold_search_s']:.2f} ({row['cold_phases']['load_s']:.2f}) | "
        f"{row['cold_peak_rss_mb']:,.0f} | {row['text_warm_p50_ms']:.1f} / {row['text_warm_p95_ms']:.1f} |",
        "",
        "| ef_search | dense p50 / p95 ms | recall@10 | cluster recall | worst query |",
        "|---:|---|---:|---:|---:|",
    ]
    lines += [
        f"| {d['ef_search']} | {d['warm_p50_ms']:.1f} / {d['warm_p95_ms']:.1f} | {d['recall_at_10']:.3f} | "
        f"{d['cluster_recall']:.3f} | {d['worst_query_recall']:.1f} |"
        for d in row["dense"]
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
