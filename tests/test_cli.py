"""The CLI contract, with the real model and FAISS: JSON shapes, exit codes, one-line errors, speed of --help."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from core_fixtures import CORPUS, ROOT

from indexer.cli import main

OVERFIT_QUERY = "why does my model do well on training data but badly on new data"


def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        code = main(list(argv), out, err)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def run_process(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "indexer", *argv], cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cli") / "index"
    code, out, err = run("build", "--index-dir", str(path), "--source", str(CORPUS))
    assert code == 0, err
    assert "82 records (10 missing, 1 link only)" in out
    return str(path)


def test_overfitting_paraphrase_puts_an_overfitting_entry_first(index_dir):
    code, out, _ = run("search", OVERFIT_QUERY, "--json", "--index-dir", index_dir)
    data = json.loads(out)
    assert code == 0 and data["query"] == OVERFIT_QUERY and data["no_match"] is False
    assert data["results"][0]["id"] in (17, 57)
    first = data["results"][0]
    assert set(first) >= {"id", "question", "answer", "score", "missing", "status", "matched_on"}
    dense = json.loads(run("search", OVERFIT_QUERY, "--json", "--mode", "dense", "--index-dir", index_dir)[1])
    scores = [r["score"] for r in dense["results"]]
    assert scores == sorted(scores, reverse=True)  # in dense mode the order is the score's


def test_search_finds_a_missing_entry_by_its_question_and_flags_it(index_dir):
    data = json.loads(run("search", "what does batch normalization do", "--json", "--index-dir", index_dir)[1])
    hit = next(r for r in data["results"] if r["id"] == 31)
    assert hit["missing"] is True and hit["status"] == "missing" and hit["matched_on"] == "question"


def test_min_score_drops_results_and_reports_no_match(index_dir):
    data = json.loads(
        run("search", "how to bake sourdough", "--json", "--min-score", "0.9", "--index-dir", index_dir)[1]
    )
    assert data == {"query": "how to bake sourdough", "no_match": True, "confidence": "no good match", "results": []}
    code, out, _ = run("search", "how to bake sourdough", "--min-score", "0.9", "--index-dir", index_dir)
    assert code == 0 and out.startswith("No good match")


def test_k_limits_results(index_dir):
    data = json.loads(
        run("search", "gradient descent", "-k", "2", "--json", "--min-score", "0", "--index-dir", index_dir)[1]
    )
    assert len(data["results"]) == 2


def test_batch_answers_every_line_in_order_as_json_lines(index_dir, tmp_path):
    queries = ["adam optimizer", "   ", "json data types", "ROC"]
    batch = tmp_path / "queries.txt"
    batch.write_text("\n".join(queries) + "\n")
    code, out, _ = run("search", "--batch", str(batch), "--json", "--index-dir", index_dir)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["query"] for r in rows] == ["adam optimizer", "json data types", "ROC"]
    assert [r["results"][0]["id"] for r in rows] == [79, 66, 39]
    code, out, _ = run("search", "--batch", "-", "--json", "--index-dir", index_dir, stdin="cost function\n?!\n")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0]["results"][0]["id"] == 7
    assert rows[1]["results"] == [] and "no letters" in rows[1]["error"]


def test_missing_lists_the_ten_and_link_only_separately(index_dir):
    code, out, _ = run("missing", "--json", "--index-dir", index_dir)
    data = json.loads(out)
    assert code == 0 and data["missing_count"] == 10 and data["total"] == 82
    assert [r["id"] for r in data["missing"]] == [31, 32, 33, 34, 35, 45, 48, 52, 58, 80]
    assert [r["id"] for r in data["link_only"]] == [72]
    assert "10 of 82 entries have no answer" in run("missing", "--index-dir", index_dir)[1]


def test_related_lists_other_entries_with_scores(index_dir):
    data = json.loads(run("related", "31", "-k", "3", "--json", "--index-dir", index_dir)[1])
    ids = [r["id"] for r in data["results"]]
    assert data["id"] == 31 and 31 not in ids and len(ids) == 3 and ids[0] == 15
    assert all(-1 <= r["score"] <= 1 for r in data["results"])


def test_info_shows_the_manifest_and_freshness(index_dir):
    data = json.loads(run("info", "--json", "--index-dir", index_dir)[1])
    assert data["state"] == "fresh" and data["record_count"] == 82 and data["missing_count"] == 10
    assert data["model"] == "all-MiniLM-L6-v2" and data["dimension"] == 384 and data["format_version"] == 3
    assert len(data["source_sha256"]) == 64


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_is_compact_when_piped_and_indented_on_a_terminal(index_dir):
    piped, terminal = io.StringIO(), Terminal()
    for out in (piped, terminal):
        assert main(["info", "--json", "--index-dir", index_dir], out, io.StringIO()) == 0
    assert len(piped.getvalue().splitlines()) == 1
    assert terminal.getvalue().startswith('{\n  "') and json.loads(terminal.getvalue()) == json.loads(piped.getvalue())


def test_info_reports_a_stale_index_without_rebuilding(index_dir, corpus_copy):
    corpus_copy.write_text(corpus_copy.read_text(encoding="utf-8") + "\n**83. New?**\n\nYes.\n", encoding="utf-8")
    data = json.loads(run("info", "--json", "--index-dir", index_dir, "--source", str(corpus_copy))[1])
    assert data["state"].startswith("stale") and data["record_count"] == 82


def test_search_rebuilds_a_stale_index_and_says_so(tmp_path, corpus_copy):
    index_dir = str(tmp_path / "index")
    assert run("build", "--index-dir", index_dir, "--source", str(corpus_copy))[0] == 0
    corpus_copy.write_text(
        corpus_copy.read_text(encoding="utf-8")
        + "\n**83. What is a kubernetes pod?**\n\nThe smallest deployable unit.\n",
        encoding="utf-8",
    )
    code, out, err = run("search", "kubernetes pod", "--json", "--index-dir", index_dir, "--source", str(corpus_copy))
    assert code == 0 and "source changed" in err
    assert json.loads(out)["results"][0]["id"] == 83


def test_parse_prints_records_without_building(tmp_path):
    code, out, _ = run("parse", str(CORPUS), "--json")
    report = json.loads(out)[0]
    assert code == 0 and len(report["records"]) == 82 and report["counts"] == {"ok": 71, "missing": 10, "link_only": 1}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search"], "give either a QUERY or --batch"),
        (["search", "x", "-k", "0"], "must be at least 1"),
        (["search", "   "], "empty"),
        (["search", "x", "--source", "no/such/file.md"], "no such file"),
        (["related", "999"], "no entry with id"),
        (["frobnicate"], "invalid choice"),
        (["search", "--batch", "no/such/queries.txt"], "no such file"),
        (["search", "x", "--min-score", "2"], "give a number from -1 to 1"),
        (["search", "x", "--min-score", "nan"], "give a number from -1 to 1"),
        (["duplicates", "--min-score", "-1.5"], "give a number from -1 to 1"),
    ],
)
def test_usage_and_input_errors_exit_2_with_one_line(index_dir, argv, message):
    if argv[0] in ("search", "related") and "--source" not in argv:
        argv = argv + ["--index-dir", index_dir]
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02binary", b"# Title only\n"])
def test_bad_documents_exit_2_with_one_line_and_no_traceback_as_a_process(tmp_path, content):
    doc = tmp_path / "doc.md"
    doc.write_bytes(content)
    proc = run_process("search", "anything", "--source", str(doc), "--index-dir", str(tmp_path / "index"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")


HEAVY_MODULES = (
    "numpy",
    "torch",
    "faiss",
    "streamlit",
    "sentence_transformers",
    "onnxruntime",
    "pandas",
    "indexer.engine",
)


def test_help_of_every_command_imports_nothing_heavy():
    # its speed is measured by bench/run.py (cold --help); here, what keeps it fast: one process runs
    # `--help` and then every command's `--help`, and reports which heavy modules got imported
    probe = (
        "import sys\nfrom indexer.cli import command_names, main\n"
        "for argv in [['--help']] + [[name, '--help'] for name in command_names()]:\n"
        "    try:\n        main(argv)\n    except SystemExit as exc:\n        assert exc.code == 0, argv\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules], file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


COMMANDS = (
    "build",
    "search",
    "gaps",
    "missing",
    "related",
    "topics",
    "duplicates",
    "info",
    "eval",
    "calibrate",
    "parse",
)


def test_the_help_tests_cover_every_command():
    from indexer.cli import command_names

    assert command_names() == list(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_works_for_every_command_as_a_process(command):
    proc = run_process(command, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m indexer " + command)


def test_importing_indexer_loads_no_torch_faiss_or_streamlit():
    probe = (
        "import sys, indexer; "
        "print([m for m in ('torch', 'faiss', 'streamlit', 'sentence_transformers') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]"


def test_search_and_missing_never_write_the_source(tmp_path, corpus_copy):
    before = corpus_copy.read_bytes(), os.stat(corpus_copy).st_mtime_ns
    index_dir = str(tmp_path / "index")
    run("search", "dropout", "--source", str(corpus_copy), "--index-dir", index_dir)
    run("missing", "--source", str(corpus_copy), "--index-dir", index_dir)
    assert (corpus_copy.read_bytes(), os.stat(corpus_copy).st_mtime_ns) == before


def test_section_filter_keeps_only_that_sections_entries(tmp_path):
    source = str(ROOT / "tests" / "fixtures" / "bold_unnumbered.md")
    index_dir = str(tmp_path / "index")
    code, out, _ = run(
        "search",
        "which payment methods are accepted",
        "--json",
        "--min-score",
        "-1",
        "--section",
        "billing",
        "--source",
        source,
        "--index-dir",
        index_dir,
    )
    assert code == 0 and {r["section"] for r in json.loads(out)["results"]} == {"Billing"}
    code, _, err = run("search", "pay", "--section", "Shipping", "--source", source, "--index-dir", index_dir)
    assert code == 2 and "sections: 'Accounts', 'Billing'" in err


def test_build_summary_reports_styles_sections_and_lines_not_taken(tmp_path):
    code, out, _ = run(
        "build",
        "--json",
        "--device",
        "cpu",
        "--source",
        str(ROOT / "tests" / "fixtures" / "headings.md"),
        "--index-dir",
        str(tmp_path / "index"),
    )
    summary = json.loads(out)
    source = summary["sources"][0]
    assert code == 0 and source["style"] == "heading" and source["entries"] == 4
    assert source["by_status"] == {"ok": 3, "missing": 1, "link_only": 0}
    assert source["by_section"] == {"Linear regression": 2, "Trees": 2}
    assert source["not_taken"] == [{"line": 15, "why": "inside a fenced code block"}]


def test_build_on_cuda_without_a_gpu_is_a_one_line_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here: the build would succeed")
    code, _, err = run(
        "build",
        "--device",
        "cuda",
        "--source",
        str(ROOT / "tests" / "fixtures" / "headings.md"),
        "--index-dir",
        str(tmp_path / "index"),
    )
    assert code == 2 and err.count("\n") == 1 and "no CUDA device" in err


def test_a_minimum_score_that_empties_the_list_says_so(index_dir):
    code, out, err = run("search", "what is dropout", "--min-score", "0.99", "--json", "--index-dir", index_dir)
    assert code == 0 and json.loads(out)["results"] == []
    assert "note: no result reaches the minimum score 0.99 (the best scores 0." in err
    code, out, _ = run("search", "what is dropout", "--min-score", "0.99", "--index-dir", index_dir)
    assert code == 0 and out.startswith("No result reaches the minimum score. Nearest entries:\n 1. [")


def test_commands_without_source_use_the_document_the_index_was_built_from(tmp_path):
    doc = tmp_path / "shop.md"
    doc.write_text(
        "1. **How do I pay?**\nWith a card or cash.\n\n2. **Can I return an item?**\nWithin 30 days.\n",
        encoding="utf-8",
    )
    index_dir = str(tmp_path / "index")
    assert run("build", "--source", str(doc), "--index-dir", index_dir)[0] == 0
    built_at = json.loads(run("info", "--json", "--index-dir", index_dir)[1])["built_at"]
    code, out, err = run("search", "paying cash", "--json", "--index-dir", index_dir)
    assert code == 0 and "building" not in err
    assert json.loads(out)["results"][0]["question"] == "How do I pay?"
    info = json.loads(run("info", "--json", "--index-dir", index_dir)[1])
    assert info["status"] == "fresh" and info["built_at"] == built_at and info["record_count"] == 2


def test_an_index_whose_document_is_gone_is_kept_not_rebuilt_from_another(tmp_path):
    doc = tmp_path / "shop.md"
    doc.write_text("1. **How do I pay?**\nWith a card or cash.\n", encoding="utf-8")
    index_dir = str(tmp_path / "index")
    assert run("build", "--source", str(doc), "--index-dir", index_dir)[0] == 0
    doc.unlink()
    code, out, err = run("search", "paying cash", "--index-dir", index_dir)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"built from {doc}, which is no longer there" in err and "--source" in err
    info = json.loads(run("info", "--json", "--index-dir", index_dir)[1])  # still described
    assert info["status"] == "stale" and "no longer there" in info["state"] and info["record_count"] == 1
    assert json.loads(run("info", "--json", "--index-dir", index_dir, "--source", str(CORPUS))[1])["record_count"] == 1


def test_info_json_tells_scripts_fresh_stale_or_corrupt(tmp_path, corpus_copy):
    index_dir = str(tmp_path / "index")
    assert run("build", "--source", str(corpus_copy), "--index-dir", index_dir)[0] == 0

    def status() -> str:
        return json.loads(run("info", "--json", "--index-dir", index_dir)[1])["status"]

    assert status() == "fresh"
    vectors = Path(index_dir) / "current" / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-4] + b"\0\0\0\0")
    assert status() == "corrupt"
    corpus_copy.write_text(corpus_copy.read_text(encoding="utf-8") + "\n**83. New?**\n\nYes.\n", encoding="utf-8")
    assert status() == "stale"  # found before the damage: it needs a rebuild either way


def test_eval_refuses_an_id_the_document_does_not_have(index_dir, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"query": "dropout", "relevant": [15], "kind": "keyword"}\n{"query": "x", "relevant": [9999]}\n',
        encoding="utf-8",
    )
    code, out, err = run("eval", str(queries), "--index-dir", index_dir)
    assert (
        code == 2
        and out == ""
        and err == f"error: {queries}: line 2: no entry with id 9999 in the document (ids run like 1, 2, 3, ...)\n"
    )


def test_an_unknown_model_fails_at_once_without_trying_the_network(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "indexer",
            "build",
            "--model",
            "no-such-model-xyz",
            "--index-dir",
            str(tmp_path / "index"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Retrying" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot load model 'no-such-model-xyz'")
    assert "nothing is downloaded" in proc.stderr


def test_an_index_of_the_bundled_document_follows_the_project_when_it_moves(tmp_path):
    from indexer.engine import DEFAULT_SOURCE, resolve_sources
    from indexer.stores.spec import open_store

    old_home = tmp_path / "old-checkout" / DEFAULT_SOURCE.name
    old_home.parent.mkdir()
    old_home.write_bytes(DEFAULT_SOURCE.read_bytes())
    store = open_store(tmp_path / "index")
    assert resolve_sources(None, store) == [DEFAULT_SOURCE]  # no index yet
    assert run("build", "--source", str(old_home), "--index-dir", str(store.index_dir))[0] == 0
    assert resolve_sources(None, store) == [old_home.resolve()]
    old_home.unlink()
    assert resolve_sources(None, store) == [DEFAULT_SOURCE]


def test_an_index_from_before_source_args_is_searched_with_its_own_document(tmp_path):
    doc = tmp_path / "shop.md"
    doc.write_text(
        "1. **How do I pay?**\nWith a card or cash.\n\n2. **Can I return an item?**\nWithin 30 days.\n",
        encoding="utf-8",
    )
    index_dir = tmp_path / "index"
    assert run("build", "--source", str(doc), "--index-dir", str(index_dir))[0] == 0
    manifest_file = index_dir / "current" / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    del manifest["source_args"]  # as an older version wrote it: the files are named under "sources" only
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    code, out, err = run("search", "paying cash", "--json", "--index-dir", str(index_dir))
    assert code == 0 and "building" not in err
    assert json.loads(out)["results"][0]["question"] == "How do I pay?"


def test_an_index_folder_that_is_a_file_is_a_one_line_error(tmp_path):
    not_a_folder = tmp_path / "index"
    not_a_folder.write_text("hello", encoding="utf-8")
    code, out, err = run("search", "x", "--index-dir", str(not_a_folder))
    assert code == 2 and err.splitlines()[-1] == f"error: cannot keep an index in {not_a_folder}: File exists"
    assert not_a_folder.read_text(encoding="utf-8") == "hello"


def test_a_usage_error_names_the_help_to_read(capsys):
    assert main(["--bogus"]) == 2
    assert "(see: python -m indexer --help)" in capsys.readouterr().err
    assert main(["search", "q", "-k", "zero"]) == 2
    assert "(see: python -m indexer search --help)" in capsys.readouterr().err
