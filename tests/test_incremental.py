"""A rebuild's parse reads again only the entry an edit touched: on many random small edits of every
fixture and evaluation document, what it gives (records, report, map) is what a full parse gives, and
when it cannot be sure it parses in full."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from core_fixtures import CORPUS, ROOT
from docgen import STYLES, generate

from indexer.documents import incremental
from indexer.documents.incremental import FileMap, FileParse, ParseMap, map_of, parse_corpus_again, reparse
from indexer.documents.parse import parse_corpus, parse_text, read_source_text
from indexer.documents.record_table import RecordTable

FIXTURES = ROOT / "tests" / "fixtures"
DOCUMENTS = sorted([*FIXTURES.glob("*.md"), FIXTURES / "qa_pairs.txt", *(ROOT / "eval").glob("*/*.md"), CORPUS])
DOCUMENTS.remove(FIXTURES / "README.md")  # about the fixtures, not one of them
GENERATED = [style for style in STYLES if style not in ("csv", "json", "jsonl")]  # tests/docgen.py's Markdown
SETEXT = "FAQ\n===\n\n" + "".join(  # entries as setext headings: their underline is a line of its own
    f"What is question {n}?\n{'-' * 20}\n\nIt is answered here, {n}.\nOn two lines.\n\n" for n in range(1, 13)
)
EDITS = 150
# Page footers after the last answer belong to the document (markdown.py); the plain copyright line does not
# match the rule (no emphasis) and stays in the answer.
FOOTERS = ("*Last updated: March 2025*", "_© 2024 Foo Inc._", "© 2024 Foo Inc.", "*Copyright stays with you.*")
SENTENCES = ("One more sentence.", "See [the docs](https://example.com).", "`x = 1`", "- a list item", "", *FOOTERS)
FOOTED = ("bold_numbered+footer", "heading_question+footer", "qa+footer", "setext+footer")  # generated, footer added
STRUCTURE = ("**9. A new question?**", "### A heading", "```", "---", "*solution*", "Q: a question?", "A: an answer")


def full(path: Path, text: str) -> tuple:
    """What a full parse gives: the report and the map of `text` read as the source at `path`."""
    report, parsed = parse_text(path, text)
    assert parsed is not None
    return report, map_of(report, parsed, text, "")


def same_maps(a: FileMap | None, b: FileMap | None) -> bool:
    assert a is not None and b is not None
    arrays = ("blocks", "groups", "skeletons", "numbers", "block_places")
    scalars = ("source", "id_prefix", "lines", "front_matter", "style", "head", "skipped", "places")
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in arrays) and all(
        getattr(a, n) == getattr(b, n) for n in scalars
    )


def edit(rng: random.Random, lines: list[str], starts: list[int]) -> tuple[str, list[str]]:
    """One small random edit, named, somewhere in an entry's block (or around it)."""
    k = rng.randrange(len(starts))
    start, end = starts[k], starts[k + 1] if k + 1 < len(starts) else len(lines)
    inside = list(range(start + 1, end)) or [start]
    new = list(lines)
    kinds = ("answer text", "line added", "line removed", "boundary", "question", "structure", "heading", "footer")
    kind = rng.choice(kinds)
    if kind == "footer":
        return kind, edit_footer(rng, new)
    if kind == "answer text":
        i = rng.choice(inside)
        new[i] = new[i] + " " + rng.choice(SENTENCES) if new[i].strip() else rng.choice(SENTENCES)
    elif kind == "line added":
        new.insert(rng.choice(inside) + rng.randint(0, 1), rng.choice(SENTENCES))
    elif kind == "line removed" and end - start > 1:
        del new[rng.choice(inside)]
    elif kind == "boundary":  # the lines next to where one entry ends and the next begins
        i = min(max(end - 1 + rng.randint(-1, 1), 0), len(new) - 1)
        action = rng.choice(("change", "add", "remove"))
        if action == "change":
            new[i] = new[i] + " edited" if new[i].strip() else "edited"
        elif action == "add":
            new.insert(i + rng.randint(0, 1), rng.choice(SENTENCES))
        else:
            del new[i]
    elif kind == "question":
        new[start] = new[start].rstrip() + " really"
    elif kind == "structure":
        new.insert(rng.choice(inside) + rng.randint(0, 1), rng.choice(STRUCTURE))
    else:  # a heading anywhere: reworded, or one level deeper
        headings = [i for i, line in enumerate(lines) if line.lstrip().startswith("#")]
        if headings:
            i = rng.choice(headings)
            new[i] = new[i] + " and more" if rng.random() < 0.5 else "#" + new[i].lstrip()
    return kind, new


def edit_footer(rng: random.Random, lines: list[str]) -> list[str]:
    """An edit at the end of the text, after the last answer: a footer added, changed, broken or removed,
    or a line added after it."""
    last = max((i for i, line in enumerate(lines) if line.strip()), default=len(lines) - 1)
    action = rng.choice(("add", "change", "break", "remove", "after"))
    if action == "add":
        return [*lines[: last + 1], "", rng.choice(FOOTERS), *lines[last + 1 :]]
    if action == "change":
        lines[last] = lines[last].replace("2025", "2026").replace("2024", "2023").replace("March", "April")
    elif action == "break":  # text after the closing emphasis: no footer, a line of the answer
        lines[last] = lines[last] + " more"
    elif action == "remove":
        del lines[last]
    else:
        lines.insert(last + 1, rng.choice(SENTENCES))
    return lines


def source_document(document: Path | str, tmp_path: Path) -> Path:
    """The file a parametrized document names: a fixture, or one written here (generated: decorated, CRLF
    or UTF-16 at times; "+footer": with a page footer after its last answer)."""
    if isinstance(document, Path):
        return document
    style, _, footer = document.partition("+")
    path = tmp_path / (document.replace("+", "_") + ".md")
    if style == "setext":
        path.write_text(SETEXT, encoding="utf-8")
    else:
        generated = generate(sum(map(ord, style)), style, 25)
        path = tmp_path / generated.name
        path.write_bytes(generated.data)
    if footer:
        text = read_source_text(path).rstrip("\n")
        path.write_text(f"{text}\n\n{FOOTERS[len(style) % 2]}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "document", [*DOCUMENTS, *GENERATED, "setext", *FOOTED], ids=lambda d: getattr(d, "name", f"{d}")
)
@pytest.mark.parametrize("group", [incremental.GROUP, 3], ids=["groups as built", "groups of 3 blocks"])
def test_reading_again_only_the_edited_entry_gives_what_a_full_parse_gives(
    document: Path | str, group: int, tmp_path, monkeypatch
):
    monkeypatch.setattr(incremental, "GROUP", group)  # several groups even in a short document
    document = source_document(document, tmp_path)
    rng = random.Random(document.name)
    text = read_source_text(document)
    report, file_map = full(document, text)
    records = RecordTable.from_records(report.records)
    taken: Counter[str] = Counter()
    for _ in range(EDITS):
        starts = [line - 1 for line in records.column("line")]
        kind, lines = edit(rng, text.split("\n"), starts)
        new_text = "\n".join(lines)
        try:
            expected, expected_map = full(document, new_text)
        except Exception:  # an edit that leaves no entries: nothing to compare
            continue
        got = reparse(new_text, file_map, records)
        if isinstance(got, str):
            taken["parsed in full"] += 1
            continue
        taken[kind] += 1
        assert list(got.report.records) == list(expected.records), kind
        assert (got.report.style, got.report.warnings, got.report.skipped, got.report.places) == (
            expected.style,
            expected.warnings,
            expected.skipped,
            expected.places,
        ), kind
        assert same_maps(got.map, expected_map), kind
        # the next edit starts from this one, as the next build starts from this build's map
        text, file_map, records = new_text, got.map, RecordTable.joined([got.report.records])
    assert sum(taken.values()) - taken["parsed in full"] > 0, taken  # not only fallbacks: the test tests something


def test_answer_edits_of_the_bundled_corpus_read_one_entry_again():
    text = read_source_text(CORPUS)
    report, file_map = full(CORPUS, text)
    records = RecordTable.from_records(report.records)
    for record in report.records:
        if record.answer and "\n" not in record.answer:
            got = reparse(text.replace(record.answer, record.answer + " More.", 1), file_map, records)
            assert isinstance(got, FileParse) and got.how == "one entry read again", (record.id, got)
            assert list(got.unchanged == -1).count(True) == 1


def test_an_unchanged_source_is_taken_over_whole():
    text = read_source_text(CORPUS)
    report, file_map = full(CORPUS, text)
    got = reparse(text, file_map, RecordTable.from_records(report.records))
    assert isinstance(got, FileParse) and got.how == "unchanged"
    assert list(got.report.records) == list(report.records) and (got.unchanged == np.arange(82)).all()


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda t: t.replace("=\n", "=\n\nAn introduction.\n", 1), "an edit before its first entry"),
        (lambda t: t.replace("**1. What", "**1. So what", 1), "a line that shapes the document changed"),
        (lambda t: t.replace("only much simpler.", "only simpler.\n\n### Layers", 1), "a line that shapes"),
        (lambda t: t.replace("Deep Learning involves", "It involves", 1).replace("MLPs have", "They have", 1), "more"),
        (lambda t: t.replace("\n**2. What is Neural Network?**\n", "\n", 1), "a line that shapes"),
    ],
    ids=["preamble", "question", "heading added", "two answers", "entry removed"],
)
def test_what_cannot_be_read_again_alone_is_parsed_in_full(change, reason):
    text = read_source_text(CORPUS)
    report, file_map = full(CORPUS, text)
    got = reparse(change(text), file_map, RecordTable.from_records(report.records))
    assert isinstance(got, str) and reason in got


def test_a_corpus_of_several_files_is_parsed_again_file_by_file(tmp_path):
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    first.write_text(read_source_text(CORPUS), encoding="utf-8")
    second.write_text(read_source_text(FIXTURES / "headings.md"), encoding="utf-8")
    files = [first, second]
    parses = parse_corpus_again(files, lambda: None, {})
    records = RecordTable.joined([RecordTable.from_records(p.report.records) for p in parses])
    maps = ParseMap.from_arrays(ParseMap([p.map for p in parses], [0, 82]).to_arrays())  # type: ignore[misc]
    assert maps is not None
    answer = records[40].answer
    first.write_text(read_source_text(first).replace(answer, answer + " Edited.", 1), encoding="utf-8")
    again = parse_corpus_again(files, lambda: None, maps.previous(records))
    assert [p.how for p in again] == ["one entry read again", "unchanged"]
    expected = parse_corpus(files)
    assert [list(p.report.records) for p in again] == [list(r.records) for r in expected]
    assert records[40].id == "a.md#41" and again[0].report.records[40].answer == answer + " Edited."


HELDOUT = ROOT / "eval" / "heldout" / "campus_housing_faq.md"  # ends with "*Last updated: March 2025*"


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("replies may take longer.", "replies may take much longer.", 1),
        lambda t: t.replace("March 2025*", "April 2026*", 1),
        lambda t: t.replace("March 2025*", "March 2025* and counting", 1),
        lambda t: t.replace("\n*Last updated: March 2025*", "", 1),
        lambda t: t.rstrip("\n") + "\n\n_© 2024 Foo Inc._\n",
        lambda t: t.rstrip("\n") + "\n\n© 2024 Foo Inc.\n",
    ],
    ids=["last answer", "footer changed", "footer broken", "footer removed", "copyright added", "plain copyright"],
)
def test_edits_around_a_page_footer_read_the_last_entry_again(change):
    text = read_source_text(HELDOUT)
    report, file_map = full(HELDOUT, text)
    assert "Last updated" not in report.records[-1].answer  # the footer rule is in play
    new_text = change(text)
    got = reparse(new_text, file_map, RecordTable.from_records(report.records))
    expected, expected_map = full(HELDOUT, new_text)
    assert isinstance(got, FileParse) and got.how == "one entry read again", got
    assert list(got.report.records) == list(expected.records)
    assert (got.report.skipped, got.report.places) == (expected.skipped, expected.places)
    assert same_maps(got.map, expected_map)
