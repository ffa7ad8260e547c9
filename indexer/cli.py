"""`python -m indexer`: a thin shell over the core. Argument parsing, printing, exit codes.

Exit codes: 0 success; 2 usage or input errors (one line on stderr, no traceback); 130 interrupted.
Heavy modules are imported inside the commands so that `--help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import NoReturn, TextIO

from indexer.defaults import (
    DEFAULT_K,
    DEFAULT_MIN_SCORE,
    DEFAULT_MODE,
    DEFAULT_MODEL,
    DEVICES,
    DUPLICATE_MIN_SCORE,
    MODES,
)
from indexer.display.wording import STATUS_LABELS, entries_phrase, plural, status_label

DEFAULT_SOURCE_HELP = "data/ml_interview_qa.md"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        command = self.prog.split()[-1]  # "python -m indexer search", or the top level's "python -m indexer"
        where = "" if command == "indexer" else f" {command}"
        raise UsageError(f"{message} (see: python -m indexer{where} --help)")


def main(argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    from indexer.errors import IndexerError

    try:
        args = build_parser().parse_args(argv)
        return args.handler(args, out, err) or 0
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except IndexerError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except BrokenPipeError:
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m indexer", description="Semantic search over question-and-answer documents.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, handler: Callable, help_text: str, index: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        if index:
            sub.add_argument(
                "--source",
                action="append",
                type=Path,
                metavar="PATH",
                help=f"Q&A file or folder; repeat for several (default: {DEFAULT_SOURCE_HELP})",
            )
            sub.add_argument(
                "--store",
                metavar="DIR_OR_URL",
                help="where the index lives: a folder, or postgresql://user@host/db[#name] "
                "(default: $INDEXER_STORE, else index/)",
            )
            sub.add_argument(
                "--index-dir",
                dest="store",
                metavar="DIR",
                help="the index folder (default: index/); same as --store DIR",
            )
            sub.add_argument(
                "--model",
                metavar="NAME_OR_PATH",
                help=f"sentence-transformers model (default: {DEFAULT_MODEL}, shipped offline)",
            )
        return sub

    sub = command("build", cmd_build, "parse the source and (re)build its index")
    sub.add_argument(
        "--device",
        choices=DEVICES,
        default=DEVICES[0],
        help="where texts are embedded: auto (default: CUDA when torch sees a GPU, else the CPU), cpu, cuda",
    )
    sub.add_argument("--json", action="store_true", help="print the build summary as JSON")

    sub = command("search", cmd_search, "find the entries closest to a question")
    sub.add_argument("query", nargs="?", help="the question, in plain words")
    sub.add_argument("--batch", metavar="FILE", help="one query per line ('-' for stdin); prints JSON Lines")
    sub.add_argument("-k", type=_positive_int, default=DEFAULT_K, help=f"number of results (default: {DEFAULT_K})")
    sub.add_argument(
        "--min-score",
        type=_cosine,
        metavar="X",
        help=f"drop results scoring below X, -1 to 1 (default: {DEFAULT_MIN_SCORE})",
    )
    _add_mode(sub)
    sub.add_argument("--section", metavar="NAME", help="only entries under this section heading")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.add_argument(
        "--log",
        action="store_true",
        help="record the search in the index's query log (for `gaps`; off when INDEXER_QUERY_LOG=off)",
    )

    sub = command(
        "gaps",
        cmd_gaps,
        "list the questions readers asked that the document does not answer "
        "(from the query log), grouped, largest first",
    )
    sub.add_argument("--since", type=_date, metavar="DATE", help="only searches from DATE on (YYYY-MM-DD, UTC)")
    output = sub.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument(
        "--markdown",
        action="store_true",
        help="print entry skeletons in the document's style (each question, an empty answer)",
    )
    output.add_argument("--csv", action="store_true", help="print CSV")

    sub = command("missing", cmd_missing, "list entries whose answer is missing (and those that are only links)")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command("related", cmd_related, "list the entries closest to one entry")
    sub.add_argument("id", help="entry id (its number in the document)")
    sub.add_argument("-k", type=_positive_int, default=DEFAULT_K, help=f"number of results (default: {DEFAULT_K})")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command("topics", cmd_topics, "group the entries into topics, with readable labels")
    sub.add_argument("--plot", type=Path, metavar="FILE", help="also save the topic map (.html, or .png)")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command("duplicates", cmd_duplicates, "list pairs of entries that ask the same thing")
    sub.add_argument(
        "--min-score",
        type=_cosine,
        metavar="X",
        help=f"question cosine needed, -1 to 1 (default: {DUPLICATE_MIN_SCORE})",
    )
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "info", cmd_info, "show how the index was built (its manifest) and whether it is fresh and intact (hashes it)"
    )
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command("eval", cmd_eval, "measure retrieval quality on labelled queries (JSON lines)")
    sub.add_argument(
        "queries",
        nargs="*",
        type=Path,
        metavar="QUERIES.jsonl",
        help='files of {"query": ..., "relevant": [ids], "kind": ...} lines',
    )
    sub.add_argument(
        "--suite",
        type=Path,
        metavar="SUITE.json",
        help="evaluate several documents instead (eval/suite.json), each in its own temporary index, "
        "with the no-match model fitted leave-one-document-out",
    )
    sub.add_argument(
        "--from-log",
        action="store_true",
        help='also label the query log\'s searches that got feedback: "answered" -> that entry, '
        '"none of these" -> none',
    )
    _add_mode(sub)
    sub.add_argument(
        "--calibrate",
        action="store_true",
        help="also fit the no-match model: cross-validated metrics and the fitted parameters",
    )
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "calibrate",
        cmd_calibrate,
        "refit the no-match decision for this index on its readers' feedback (the query log)",
    )
    sub.add_argument(
        "--from-log",
        action="store_true",
        required=True,
        help='use the query log\'s feedback: "answered" -> that entry, "none of these" -> none',
    )
    sub.add_argument("queries", nargs="*", type=Path, metavar="QUERIES.jsonl", help="more labelled queries to add")
    sub.add_argument(
        "--save",
        action="store_true",
        help="keep the refitted parameters (a new generation; later rebuilds keep them) when they "
        "decide better in cross-validation",
    )
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command("parse", cmd_parse, "parse Q&A files and print the records, without building", index=False)
    sub.add_argument("files", nargs="+", type=Path, metavar="FILE", help="file(s) or folder(s) to parse")
    sub.add_argument("--json", action="store_true", help="print the records as JSON")
    return parser


def command_names() -> list[str]:
    """The commands, in the order `--help` lists them."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(subparsers.choices)


def _add_mode(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--mode",
        default=DEFAULT_MODE,
        choices=list(MODES),
        help="ranking: "
        + ", ".join(f"{mode} ({'default: ' if mode == DEFAULT_MODE else ''}{what})" for mode, what in MODES.items()),
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _date(text: str):
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: give YYYY-MM-DD") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cosine(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not -1.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} is not a cosine: give a number from -1 to 1")
    return value


# ---- shared argument handling -------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> tuple[list[Path], str | Path, str]:
    """Sources, store spec (a folder or a PostgreSQL URL: never wrap it in Path) and model."""
    from indexer.engine import resolve_sources
    from indexer.stores.spec import open_store

    spec, model = _store_and_model(args)
    return resolve_sources(args.source, open_store(spec)), spec, model


def _store_and_model(args: argparse.Namespace) -> tuple[str | Path, str]:
    from indexer.engine import DEFAULT_INDEX_DIR
    from indexer.stores.spec import store_spec

    return store_spec(args.store, DEFAULT_INDEX_DIR), args.model or DEFAULT_MODEL


def _progress_bar(err: TextIO):
    def factory(total: int):
        from tqdm import tqdm

        bar = tqdm(total=total, desc="embedding", unit="text", file=err, leave=False, dynamic_ncols=True)

        def advance(n: int) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return advance

    return factory


def _open(args: argparse.Namespace, err: TextIO, will_search: bool = False):
    from indexer.engine import QAIndex

    sources, spec, model = _settings(args)
    return QAIndex.open(
        sources,
        spec,
        model,
        notify=lambda m: print(m, file=err),
        progress=_progress_bar(err),
        preload_encoder=will_search,
    )


def _print_json(data: object, out: TextIO) -> None:
    """Indented on a terminal, compact otherwise: a script parses either, and indenting forces the
    json module's pure-Python encoder (0.35 s of `missing --json` at 100,000 entries)."""
    print(json.dumps(data, ensure_ascii=False, indent=2 if out.isatty() else None), file=out)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _status_suffix(status: str) -> str:
    return "" if status == "ok" else f"  [{status_label(status)}]"


# ---- commands -----------------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.engine import build_encoder
    from indexer.indexing.build import build
    from indexer.stores.spec import open_store

    sources, spec, model = _settings(args)
    store = open_store(spec)
    summary = build(sources, store, lambda: build_encoder(model, args.device), model, _progress_bar(err))
    from indexer.retrieval.onnx_encoder import ensure_onnx_export

    ensure_onnx_export(model)  # while torch is loaded anyway: the first query then needs no torch
    if args.json:
        _print_json(summary.to_dict(), out)
    else:
        for report in summary.reports:
            _print_parse_summary(report, out)
        print(
            f"built {store.location}: {summary.records} records ({summary.missing} missing, "
            f"{summary.link_only} {STATUS_LABELS['link_only']}) in {summary.seconds:.1f} s; "
            f"{summary.changed} entries new or changed; embedded {summary.embedded} texts, "
            f"reused {summary.reused}",
            file=out,
        )
    return 0


def cmd_search(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if (args.query is None) == (args.batch is None):
        raise UsageError("give either a QUERY or --batch FILE (see: python -m indexer search --help)")
    qa = _open(args, err, will_search=True)
    if args.batch is not None:
        return _search_batch(qa, args, out, err)
    result = qa.search(args.query, k=args.k, min_score=args.min_score, mode=args.mode, section=args.section)
    _log_search(qa, result, args, err)
    for note in result.notes:
        print(f"note: {note}", file=err)
    if args.json:
        _print_json(result.to_dict(), out)
        return 0
    if result.no_match:
        print(
            f"{'No result reaches the minimum score' if result.below_minimum else 'No good match'}. Nearest entries:",
            file=out,
        )
    for rank, hit in enumerate(result.hits or result.nearest, start=1):
        print(
            f"{rank:>2}. [{hit.record.id}] {hit.score:.3f} ({hit.matched_on}) "
            f"{_short(hit.record.question, 90)}{_status_suffix(hit.record.status)}",
            file=out,
        )
    return 0


def _search_batch(qa, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.analysis.queryfiles import read_queries
    from indexer.errors import QueryError

    queries = read_queries(args.batch)
    for query, result in zip(queries, qa.search_many(queries, args.k, args.min_score, args.mode, args.section)):
        if isinstance(result, QueryError):
            row = {"query": query, "no_match": True, "results": [], "error": str(result)}
        else:
            _log_search(qa, result, args, err)
            row = result.to_dict()
        print(json.dumps(row, ensure_ascii=False), file=out)
    return 0


def _log_search(qa, result, args: argparse.Namespace, err: TextIO) -> None:
    """With --log, record the search; a failing log is one warning line, and the search goes on."""
    if args.log:
        qa.log_search(result, notify=lambda message: print(f"warning: {message}", file=err))


def cmd_missing(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.documents.selection import link_only_answers, missing_answers

    qa = _open(args, err)
    missing, link_only = missing_answers(qa.records), link_only_answers(qa.records)
    hints = dict(zip([r.id for r in missing], qa.hints_many([r.id for r in missing])))
    if args.json:

        def entry(r, with_hints: bool) -> dict:
            data = {
                "id": r.id,
                "question": r.question,
                "status": r.status,
                "line": r.line,
                "section": r.section,
                "source": r.source,
            }
            if with_hints:
                data["hints"] = [{"id": h.record.id, "score": round(h.score, 4)} for h in hints[r.id]]
            return data

        _print_json(
            {
                "total": len(qa.records),
                "missing_count": len(missing),
                "link_only_count": len(link_only),
                "missing": [entry(r, True) for r in missing],
                "link_only": [entry(r, False) for r in link_only],
            },
            out,
        )
        return 0
    print(entries_phrase(len(missing), len(qa.records), "no answer") + (":" if missing else "."), file=out)
    for record in missing:
        print(f"  [{record.id}] {_short(record.question, 100)}  (line {record.line})", file=out)
        if hints[record.id]:
            print(
                "        closest answered: " + ", ".join(f"[{h.record.id}] {h.score:.2f}" for h in hints[record.id]),
                file=out,
            )
    if link_only:
        print(f"{plural(len(link_only), 'entry answers', 'entries answer')} only with links:", file=out)
        for record in link_only:
            print(f"  [{record.id}] {_short(record.question, 100)}  (line {record.line})", file=out)
    return 0


def cmd_related(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.documents.selection import parse_record_id

    qa = _open(args, err)
    record_id = parse_record_id(args.id, qa.records)
    hits = qa.related(record_id, k=args.k)
    record = qa.record(record_id)
    if args.json:
        _print_json({"id": record.id, "question": record.question, "results": [h.to_dict() for h in hits]}, out)
        return 0
    print(f"Entries related to [{record.id}] {_short(record.question, 90)}:", file=out)
    for rank, hit in enumerate(hits, start=1):
        print(
            f"{rank:>2}. [{hit.record.id}] {hit.score:.3f} "
            f"{_short(hit.record.question, 90)}{_status_suffix(hit.record.status)}",
            file=out,
        )
    return 0


def cmd_topics(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    qa = _open(args, err)
    found = qa.topics()
    if args.plot:
        from indexer.analysis.charts import save_chart, topic_map_chart
        from indexer.analysis.topics import topic_map

        save_chart(topic_map_chart(topic_map(qa.stored, found), found), args.plot)
        print(f"saved the topic map to {args.plot}", file=err)
    if args.json:
        _print_json([t.to_dict() for t in found], out)
        return 0
    for topic in found:
        print(f"{topic.number:>2}. {topic.label}  ({len(topic.record_ids)} entries)", file=out)
        for record_id in topic.record_ids:
            record = qa.record(record_id)
            print(f"      [{record_id}] {_short(record.question, 90)}{_status_suffix(record.status)}", file=out)
    return 0


def cmd_duplicates(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    qa = _open(args, err)
    pairs = qa.duplicates(args.min_score)
    if args.json:
        _print_json([p.to_dict() for p in pairs], out)
        return 0
    print(f"{plural(len(pairs), 'pair')} of entries ask much the same thing{':' if pairs else '.'}", file=out)
    for pair in pairs:
        print(f"  {pair.score:.3f}  [{pair.first}] {_short(qa.record(pair.first).question, 60)}", file=out)
        print(f"         [{pair.second}] {_short(qa.record(pair.second).question, 60)}", file=out)
    return 0


def cmd_info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.engine import resolve_sources
    from indexer.errors import IndexMissingError, SourceError
    from indexer.stores.spec import open_store

    spec, model = _store_and_model(args)
    store = open_store(spec)
    manifest = store.read_manifest()
    if manifest is None:
        raise IndexMissingError(f"no index at {store.location}; run: python -m indexer build")
    try:
        sources = resolve_sources(args.source, store)
    except SourceError as exc:  # the document it was built from is gone: the index is still worth describing
        store_state = f"stale: {exc}"
    else:
        store_state = _freshness(store, manifest, sources, model)
    if args.json:
        _print_json(
            {**manifest, "status": store_state.split(":")[0], "state": store_state, "index_dir": store.location}, out
        )
        return 0
    print(f"index:      {store.location} ({store_state})", file=out)
    for key in (
        "model",
        "dimension",
        "index_type",
        "record_count",
        "missing_count",
        "link_only_count",
        "question_vectors",
        "answer_vectors",
        "built_at",
        "build_seconds",
        "format_version",
    ):
        print(f"{key + ':':<18}{manifest.get(key)}", file=out)
    for source in manifest.get("sources", []):
        print(f"{'source:':<18}{source['path']} (sha256 {source['sha256'][:12]}…, {source['bytes']} bytes)", file=out)
    from indexer.usage.calibration import describe

    print(f"{'no-match model:':<18}{describe(manifest.get('no_match'))}", file=out)
    return 0


def _freshness(store, manifest: dict, sources: list[Path], model: str) -> str:
    """ "fresh", "stale: why" or "corrupt: why"."""
    from indexer.documents.parse import source_files
    from indexer.errors import IndexCorruptError
    from indexer.indexing.build import source_fingerprint, stale_reason

    reason = stale_reason(manifest, source_fingerprint(source_files(sources)), model, store.format_version)
    if reason:
        return f"stale: {reason}"
    try:
        store.verify()  # every byte against its checksum: a load trusts files the build's stamps vouch for
        store.load()
    except IndexCorruptError as exc:
        return f"corrupt: {exc}"
    return "fresh"


def cmd_eval(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.analysis.evaluate import calibrate, cross_validate, report

    if args.suite:
        return _eval_suite(args, out, err)
    if not args.queries and not args.from_log:
        raise UsageError(
            "give QUERIES.jsonl files, --from-log, --suite, or both files and --from-log "
            "(see: python -m indexer eval --help)"
        )
    qa = _open(args, err)
    extra = _logged_feedback(qa, err) if args.from_log else []
    queries, outcomes, evidence = _answer_labelled(args.queries, qa, args.mode, extra)
    result = {"mode": args.mode, "queries": len(queries), "metrics": report(queries, outcomes)}
    if args.calibrate:
        result["cross_validated"] = cross_validate(queries, outcomes, evidence)
        result["fitted_no_match"] = calibrate(queries, outcomes, evidence).to_dict()
    if args.json:
        _print_json(result, out)
        return 0
    _print_metrics(f"mode {args.mode}, as configured", result["metrics"], out)
    if args.calibrate:
        _print_metrics(f"mode {args.mode}, no-match model cross-validated (5-fold x 5)", result["cross_validated"], out)
        print("fitted no-match model: " + json.dumps(result["fitted_no_match"]), file=out)
    return 0


def _answer_labelled(paths: list[Path], qa, mode: str, extra: list | None = None):
    """Load labelled queries (and any `extra` ones), check their ids against the index, and answer them."""
    from indexer.analysis.evaluate import check_ids, run_queries
    from indexer.analysis.queryfiles import load_queries
    from indexer.documents.records import field_values

    queries = [q for path in paths for q in load_queries(path)] + (extra or [])
    check_ids(queries, field_values(qa.records, "id"))
    outcomes, evidence = run_queries(qa, queries, mode)
    return queries, outcomes, evidence


def _eval_suite(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Every suite document in a temporary index of its own; figures leave-one-document-out."""
    import tempfile
    from dataclasses import asdict

    from indexer.analysis.evaluate import calibrate_documents, check_ids, evaluate_suite, load_suite
    from indexer.analysis.queryfiles import load_queries
    from indexer.documents.records import field_values
    from indexer.engine import QAIndex

    _, _, model = _settings(args)
    answered = {}
    with tempfile.TemporaryDirectory(prefix="indexer-eval-") as folder:
        for document in load_suite(args.suite):
            qa = QAIndex.open(
                [document.document],
                Path(folder) / document.name,
                model,
                notify=lambda m: print(m, file=err),
                progress=_progress_bar(err),
            )
            queries = [q for path in document.queries for q in load_queries(path)]
            check_ids(queries, field_values(qa.records, "id"))
            answered[document.name] = (qa, queries)
        evaluated = evaluate_suite(answered, args.mode)
    result = {
        "mode": args.mode,
        "as_configured": evaluated.shipped,
        "leave_one_document_out": evaluated.metrics,
        "weights_chosen_without_each": {name: asdict(w) for name, w in evaluated.weights.items()},
        "weights_chosen_on_all": asdict(evaluated.all_weights),
    }
    if args.calibrate:
        result["fitted_no_match"] = calibrate_documents(evaluated.all_runs).to_dict()
    if args.json:
        _print_json(result, out)
        return 0
    for name, table in result["leave_one_document_out"].items():
        chosen = evaluated.weights[name]
        title = f"{name}: hybrid weights {chosen.other_field}/{chosen.lexical} and no-match model chosen on the others"
        _print_metrics(title, table, out)
    shipped = evaluated.all_weights
    print(
        f"hybrid weights chosen on every document: other field {shipped.other_field}, lexical {shipped.lexical}",
        file=out,
    )
    if args.calibrate:
        print("no-match model fitted on every document: " + json.dumps(result["fitted_no_match"]), file=out)
    return 0


# metric → column heading of the eval tables
_METRIC_COLUMNS = {
    "queries": "queries",
    "hit@1": "hit@1",
    "hit@3": "hit@3",
    "strict_hit@3": "strict hit@3",
    "mrr@10": "mrr@10",
    "ndcg@10": "ndcg@10",
    "no_match_accuracy": "no match",
    "false_rejection": "false rej.",
    "good_precision": "good prec.",
}


def _print_metrics(title: str, table: dict[str, dict], out: TextIO) -> None:
    print(title + ":", file=out)
    print(f"{'kind':<16}" + "".join(f"{heading:>14}" for heading in _METRIC_COLUMNS.values()), file=out)
    for group, values in table.items():
        cells = "".join(f"{'-' if values[c] is None else values[c]:>14}" for c in _METRIC_COLUMNS)
        print(f"{group or '(no kind)':<16}{cells}", file=out)


def _logged_feedback(qa, err: TextIO) -> list:
    """The query log's feedback as labelled queries; those naming an entry the document no longer
    has (answered before a rebuild) are left out with a note."""
    from indexer.documents.records import field_values
    from indexer.errors import QueryError
    from indexer.usage.querylog import existing_query_log, feedback_queries

    log = existing_query_log(qa.store)
    known = set(field_values(qa.records, "id"))
    labelled = feedback_queries(log.entries())
    kept = [q for q in labelled if all(record_id in known for record_id in q.relevant)]
    if len(kept) < len(labelled):
        print(
            f"note: left out {plural(len(labelled) - len(kept), 'logged query', 'logged queries')} "
            "answered by an entry the document no longer has",
            file=err,
        )
    if not kept:
        raise QueryError(f"the query log at {log.location} holds no feedback yet")
    return kept


def cmd_calibrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.analysis.queryfiles import load_queries
    from indexer.usage.calibration import MIN_OF_EACH, MIN_QUERIES, calibrate_from_feedback, saved_parameters

    qa = _open(args, err)
    queries = _logged_feedback(qa, err) + [q for path in args.queries for q in load_queries(path)]
    result = calibrate_from_feedback(qa, queries)
    saved = bool(args.save and result.better and result.model)
    if saved and result.model is not None:  # `saved` holds only with a model
        _rebuild_with(args, qa, saved_parameters(result.model, len(queries)), err)
    if args.json:
        _print_json({**result.to_dict(), "saved": saved}, out)
        return 0
    print(
        f"feedback: {plural(result.answerable, 'answered query', 'answered queries')}, "
        f"{plural(result.unanswerable, 'query', 'queries')} with none of the results useful",
        file=out,
    )
    if not result.enough:
        print(
            f"not enough feedback to refit (at least {MIN_OF_EACH} of each and {MIN_QUERIES} in all); "
            "the parameters in use stay",
            file=out,
        )
        return 0
    for title, metrics in (("in use", result.current), ("refitted, cross-validated", result.refitted)):
        assert metrics is not None  # both are measured whenever there was enough feedback
        print(
            f"  {title + ':':<27} no-match accuracy {metrics['no_match_accuracy']}, "
            f"false rejections {metrics['false_rejection']}, strict hit@3 {metrics['strict_hit@3']}",
            file=out,
        )
    verdict = (
        "saved: this index now answers with the refitted parameters"
        if saved
        else (
            "the refitted parameters decide better; --save keeps them"
            if result.better
            else "the refitted parameters do not decide better; the parameters in use stay"
        )
    )
    print(verdict, file=out)
    return 0


def _rebuild_with(args: argparse.Namespace, qa, no_match: dict, err: TextIO) -> None:
    """A new generation of the same sources with these no-match parameters (vectors all reused)."""
    from indexer.engine import build_encoder, resolve_sources
    from indexer.indexing.build import build

    sources, _, model = _settings(args)
    build(
        resolve_sources(sources, qa.store),
        qa.store,
        lambda: build_encoder(model),
        model,
        _progress_bar(err),
        no_match=no_match,
    )


def cmd_gaps(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.stores.spec import open_store
    from indexer.usage.gaps import entry_style, find_gaps, gaps_csv, gaps_markdown
    from indexer.usage.querylog import existing_query_log

    spec, _ = _store_and_model(args)
    entries = existing_query_log(open_store(spec)).entries(since=args.since)  # before _open: no log, no build
    qa = _open(args, err)
    gaps = find_gaps(entries, qa)
    if args.json:
        _print_json({"groups": [gap.to_dict() for gap in gaps]}, out)
    elif args.markdown:
        print(gaps_markdown(gaps, entry_style(qa.records, qa.manifest)), file=out, end="")
    elif args.csv:
        print(gaps_csv(gaps), file=out, end="")
    else:
        _print_gaps(gaps, len(entries), out)
    return 0


def _print_gaps(gaps: list, searched: int, out: TextIO) -> None:
    print(
        f"{plural(len(gaps), 'question')} the document does not answer, from "
        f"{plural(searched, 'logged search', 'logged searches')}{':' if gaps else '.'}",
        file=out,
    )
    for number, gap in enumerate(gaps, start=1):
        print(
            f"{number:>2}. {_short(gap.label, 80)}  (asked {gap.count}x, {gap.first_asked:%Y-%m-%d} to "
            f"{gap.last_asked:%Y-%m-%d})",
            file=out,
        )
        for query in [query for query in gap.queries if query != gap.label][:5]:
            print(f"      also: {_short(query, 80)}", file=out)
        if gap.nearest:
            print(
                "      nearest: " + ", ".join(f"[{record_id}] {score:.2f}" for record_id, score in gap.nearest),
                file=out,
            )


def cmd_parse(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from indexer.documents.parse import parse_corpus, source_files

    reports = parse_corpus(source_files(args.files))
    if args.json:
        _print_json(
            [
                {
                    "source": r.source,
                    "style": r.style,
                    "counts": r.counts(),
                    "warnings": r.warnings,
                    "skipped": [{"line": line, "why": why} for line, why in r.skipped],
                    "places": r.places,
                    "records": [rec.to_dict() for rec in r.records],
                }
                for r in reports
            ],
            out,
        )
        return 0
    for report in reports:
        _print_parse_summary(report, out)
        for record in report.records:
            section = f"  ({record.section})" if record.section else ""
            print(f"  [{record.id}] {status_label(record.status):<14} {_short(record.question, 80)}{section}", file=out)
    return 0


def _print_parse_summary(report, out: TextIO) -> None:
    """What a user needs to check that a document was read right: counts, sections, where every line
    went, warnings, and everything not taken."""
    from indexer.documents.places import describe_places

    counts = report.counts()
    print(
        f"{report.source}: {len(report.records)} entries ({report.style} style): {counts['ok']} ok, "
        f"{counts['missing']} missing, {counts['link_only']} {STATUS_LABELS['link_only']}",
        file=out,
    )
    sections: dict[str, int] = {}
    for record in report.records:
        sections[record.section] = sections.get(record.section, 0) + 1
    if any(sections):
        print("  by section: " + ", ".join(f"{name or '(none)'} {count}" for name, count in sections.items()), file=out)
    if report.places:
        print(f"  lines: {describe_places(report.places)}", file=out)
    for warning in report.warnings:
        print(f"  warning: {warning}", file=out)
    for line, why in report.skipped:
        print(f"  not taken: line {line}: {why}", file=out)
