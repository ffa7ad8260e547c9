"""Hostile and broken input: hundreds of generated documents, huge files, odd queries, never a traceback."""

from __future__ import annotations

import io

import pytest
from docgen import STYLES, broken, generate

from indexer.cli import main
from indexer.documents.parse import MAX_SOURCE_BYTES, parse_file
from indexer.errors import SourceError

GENERATED = 240
BROKEN = 45


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("seed", range(GENERATED))
def test_generated_document_gives_exactly_its_entries(tmp_path, seed):
    doc = generate(seed)
    records = parse_file(write(tmp_path, doc.name, doc.data)).records
    assert [r.question for r in records] == [e.question for e in doc.expected], doc.style
    assert [r.status for r in records] == [e.status for e in doc.expected], doc.style
    assert [r.id for r in records] == [e.number for e in doc.expected], doc.style


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("entries", [1, 7, 60])
def test_every_style_yields_n_records(tmp_path, style, entries):
    doc = generate(1000 + entries, style=style, entries=entries)
    assert len(parse_file(write(tmp_path, doc.name, doc.data)).records) == entries


@pytest.mark.parametrize("seed", range(BROKEN))
def test_broken_document_fails_with_one_line_and_exit_2(tmp_path, seed):
    name, data = broken(seed)
    path = write(tmp_path, name, data)
    with pytest.raises(SourceError):
        parse_file(path)
    out, err = io.StringIO(), io.StringIO()
    assert main(["parse", str(path)], out, err) == 2
    assert err.getvalue().count("\n") == 1 and err.getvalue().startswith("error: ")


def test_ten_thousand_entries(tmp_path):
    doc = generate(7, style="bold_numbered", entries=10_000)
    assert len(parse_file(write(tmp_path, doc.name, doc.data)).records) == 10_000


def test_a_single_five_megabyte_answer_is_kept_whole(tmp_path):
    answer = "word " * 1_000_000
    path = write(tmp_path, "big.md", f"**1. Big?**\n\n{answer}\n\n**2. Small?**\n\nyes\n".encode())
    records = parse_file(path).records
    assert len(records) == 2 and len(records[0].answer) == len(answer.strip())


def test_a_fifty_megabyte_document_parses(tmp_path):
    entry = "**{n}. What is item {n}?**\n\n*Solution:*\n\n" + "Lorem ipsum dolor sit amet. " * 60 + "\n\n"
    count = 50_000_000 // len(entry.format(n=1_000)) + 100
    path = write(tmp_path, "fifty.md", "".join(entry.format(n=n) for n in range(1, count + 1)).encode())
    assert path.stat().st_size >= 50_000_000
    assert len(parse_file(path).records) == count


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path):
    path = tmp_path / "huge.md"
    with open(path, "wb") as fh:
        fh.truncate(MAX_SOURCE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(SourceError, match="limit"):
        parse_file(path)


@pytest.mark.parametrize(
    "query",
    [
        "x" * 100_000,
        "what\x00is\x07 overfitting\x1b[31m",
        "什么是过拟合",
        "¿Qué es el sobreajuste?",
        "переобучение модели",
        "a",
    ],
)
def test_odd_queries_are_answered(real_index, query):
    result = real_index.search(query)
    assert result.nearest and all(-1 <= h.score <= 1 for h in result.nearest)


def test_a_query_over_the_limit_is_cut_with_a_note(real_index):
    assert any("cut" in note for note in real_index.search("overfitting " * 10_000).notes)
