"""Gaps (indexer/usage/gaps.py): which logged searches count, grouping by meaning (exact on
hand-made vectors, and paraphrases with the real model), the Markdown skeleton read back by this
project's parser, CSV, and the `gaps` command.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from core_fixtures import CORPUS, ROOT
from test_cli import run
from test_querylog import index_copy, searched  # noqa: F401  (a private copy of the real-model index)

from indexer.documents.parse import parse_file
from indexer.usage.gaps import EntryStyle, Gap, entry_style, find_gaps, gaps_csv, gaps_markdown, group_vectors
from indexer.usage.querylog import LOG_FILE, LogEntry, SqliteQueryLog

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
REFUND = [
    "How do I get a refund for my course?",
    "Can I get my money back after buying the course?",
    "refund policy for the course",
]
SALARY = [
    "What salary should I expect as a junior data scientist?",
    "How much does an entry-level data scientist earn?",
]


def asked(row: int, query: str, no_match: bool = True, feedback=None, answered=None, hours: int = 0) -> LogEntry:
    return LogEntry(row, T0 + timedelta(hours=hours), query, (), no_match, None, "build-1", feedback, answered)


def test_only_unanswered_or_useless_searches_are_gaps():
    assert asked(1, "q").is_gap  # no good match
    assert asked(1, "q", no_match=False, feedback="none").is_gap  # results shown, but "none of these"
    assert not asked(1, "q", no_match=False).is_gap  # answered, nobody complained
    assert not asked(1, "q", no_match=True, feedback="answered", answered=3).is_gap  # a greyed result did answer it


def test_grouping_is_exact_on_hand_made_vectors():
    def unit(*values: float) -> np.ndarray:
        vector = np.array(values, dtype=np.float32)
        return vector / np.linalg.norm(vector)

    vectors = np.vstack([unit(1, 0, 0), unit(0, 1, 0), unit(0.9, 0.1, 0), unit(0, 0.95, 0.1), unit(0, 0, 1)])
    assert group_vectors(vectors, 0.8) == [[0, 2], [1, 3], [4]]
    assert group_vectors(vectors, 0.0) == [[0, 1, 2, 3, 4]]
    assert group_vectors(vectors, 0.999) == [[0], [1], [2], [3], [4]]


def test_paraphrases_form_one_group_and_answered_queries_are_not_gaps(real_index):
    entries = [asked(i, q, hours=i) for i, q in enumerate(REFUND)]
    entries += [asked(10, SALARY[0], hours=10), asked(11, SALARY[1], no_match=False, feedback="none", hours=11)]
    entries += [
        asked(20, "What is deep learning?", no_match=False),  # answered
        asked(21, "what is a neural network", no_match=True, feedback="answered", answered=2),
        asked(22, "refund policy for the course.", hours=30),
    ]  # a repeat: same words, other punctuation
    gaps = find_gaps(entries, real_index)
    assert [sorted(g.queries) for g in gaps] == [sorted(REFUND), sorted(SALARY)]
    refund, salary = gaps
    assert (refund.count, refund.first_asked, refund.last_asked) == (4, T0, T0 + timedelta(hours=30))
    assert refund.label in REFUND and refund.label.endswith("?")  # a question, ready to be an entry's heading
    assert salary.count == 2 and len(refund.nearest) == 3
    assert all(-1 <= score <= 1 for _, score in refund.nearest)
    assert refund.to_dict().keys() == {"label", "count", "first_asked", "last_asked", "queries", "nearest"}


def test_no_gaps_when_every_search_was_answered(real_index):
    assert find_gaps([asked(1, "What is deep learning?", no_match=False)], real_index) == []


def _gaps(*labels: str) -> list[Gap]:
    return [
        Gap(label, 2, T0, T0 + timedelta(days=1), [label, label.lower() + " please"], [(3, 0.41)]) for label in labels
    ]


@pytest.mark.parametrize(
    "document", [CORPUS, FIXTURES / "headings.md", FIXTURES / "qa_pairs.txt", FIXTURES / "bold_unnumbered.md"]
)
def test_the_skeleton_parses_back_as_entries_with_missing_answers(document, tmp_path):
    report = parse_file(document)
    style = entry_style(report.records, {"parse": [{"style": report.style}]})
    skeleton = gaps_markdown(
        _gaps("How do I get a refund?", "salary of a junior data scientist", "Is there -- a fee?"), style
    )
    alone = tmp_path / f"skeleton{document.suffix}"
    alone.write_text(skeleton)
    parsed = parse_file(alone)
    assert parsed.style == report.style
    assert [r.question for r in parsed.records] == [
        "How do I get a refund?",
        "Salary of a junior data scientist?",
        "Is there -- a fee?",
    ]
    assert [r.status for r in parsed.records] == ["missing"] * 3
    appended = tmp_path / f"document{document.suffix}"
    appended.write_text(document.read_text() + "\n" + skeleton)  # what a writer does with it
    together = parse_file(appended).records
    assert [(r.id, r.question, r.status) for r in together[:-3]] == [
        (r.id, r.question, r.status) for r in report.records
    ]
    assert [r.status for r in together[-3:]] == ["missing"] * 3


def test_the_skeleton_follows_the_documents_numbering_and_heading_level(tmp_path):
    bold = parse_file(CORPUS)
    assert entry_style(bold.records, {"parse": [{"style": "bold"}]}) == EntryStyle("bold", 3, ".", 83)
    document = tmp_path / "faq.md"
    document.write_text("# FAQ\n\n#### 1) What is X?\n\nX.\n\n#### 7) What is Y?\n\nY.\n")
    headings = parse_file(document)
    style = entry_style(headings.records, {"parse": [{"style": "heading"}]})
    assert style == EntryStyle("heading", 4, ")", 8)
    assert gaps_markdown(_gaps("What is a p-value?"), style).splitlines()[0] == "#### 8) What is a p-value?"
    mixed = parse_file(FIXTURES / "headings.md")  # one entry has no number: new ones get none either
    assert entry_style(mixed.records, {"parse": [{"style": "heading"}]}).number_mark == ""


def test_the_csv_has_one_row_per_group():
    rows = list(csv.DictReader(io.StringIO(gaps_csv(_gaps("How do I get a refund?", "Is there a fee, really?")))))
    assert [row["label"] for row in rows] == ["How do I get a refund?", "Is there a fee, really?"]
    assert rows[0]["count"] == "2" and rows[0]["nearest"] == "3:0.41"
    assert rows[0]["queries"] == "How do I get a refund? | how do i get a refund? please"


# ---- the command --------------------------------------------------------------------------------------


def _log_searches(index_dir: str) -> None:
    log = SqliteQueryLog(Path(index_dir) / LOG_FILE)
    for query in REFUND + SALARY:
        log.record(searched(query, no_match=True), "build-1")
    log.feedback(log.record(searched("What is deep learning?"), "build-1"), answered=1)
    old = log.record(
        searched("an old question nobody answered", no_match=True),
        "build-1",
        asked_at=datetime.now(UTC) - timedelta(days=30),
    )
    assert old


def test_gaps_json_lists_the_groups_largest_first(index_copy):
    _log_searches(index_copy)
    code, out, err = run("gaps", "--index-dir", index_copy, "--source", str(CORPUS), "--json")
    assert code == 0, err
    groups = json.loads(out)["groups"]
    assert [g["count"] for g in groups] == [3, 2, 1]
    assert sorted(groups[0]["queries"]) == sorted(REFUND)
    assert groups[2]["queries"] == ["an old question nobody answered"]
    assert all(set(n) == {"id", "score"} for n in groups[0]["nearest"]) and len(groups[0]["nearest"]) == 3
    since = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
    code, out, _ = run("gaps", "--index-dir", index_copy, "--source", str(CORPUS), "--json", "--since", since)
    assert [g["count"] for g in json.loads(out)["groups"]] == [3, 2]


def test_gaps_prints_text_markdown_and_csv(index_copy):
    _log_searches(index_copy)
    base = ("gaps", "--index-dir", index_copy, "--source", str(CORPUS))
    code, out, _ = run(*base)
    assert code == 0 and out.startswith("3 questions the document does not answer, from 7 logged searches:")
    code, out, _ = run(*base, "--markdown")
    assert code == 0 and out.startswith("**83. ") and "\n**85. An old question nobody answered?**\n" in out
    code, out, _ = run(*base, "--csv")
    assert code == 0 and out.splitlines()[0] == "label,count,first_asked,last_asked,queries,nearest"
    assert len(out.splitlines()) == 4


def test_gaps_on_an_index_without_a_log_says_so_in_one_line(index_copy):
    code, out, err = run("gaps", "--index-dir", index_copy, "--source", str(CORPUS))
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: no query log at ")


def test_gaps_with_a_bad_date_is_a_usage_error(index_copy):
    code, _, err = run("gaps", "--index-dir", index_copy, "--since", "last tuesday")
    assert code == 2 and "YYYY-MM-DD" in err and err.count("\n") == 1


def test_help_of_the_new_command_and_options():
    def help_of(*command: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "indexer", *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0 and proc.stdout.startswith("usage:")
        return proc.stdout

    gaps = help_of("gaps")
    assert all(option in gaps for option in ("--since", "--json", "--markdown", "--csv"))
    assert "--log" in help_of("search") and "--from-log" in help_of("eval")
    assert "gaps" in help_of()
