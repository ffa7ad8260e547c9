"""A seeded generator of Q&A documents in every supported style, each with the records it must give.

Used by the property and hostile-input tests: a document built here with N entries must parse to
exactly those N questions, statuses and ids, however its text is decorated or encoded.
"""

from __future__ import annotations

import codecs
import json
import random
from dataclasses import dataclass

WORDS = (
    "model data training loss gradient layer network feature label batch epoch kernel tree forest "
    "vector matrix token embedding cluster score metric optimizer weight bias variance"
).split()
EXOTIC = ["émigré", "naïve", "数据", "模型", "שלום", "مرحبا", "🚀", "✨", "Ω", "ß"]
STYLES = (
    "bold_numbered",
    "bold_plain",
    "list_bold",
    "heading_numbered",
    "heading_question",
    "qa",
    "csv",
    "json",
    "jsonl",
)


@dataclass(frozen=True)
class Expected:
    question: str
    status: str  # "ok" or "missing"
    number: int | None


@dataclass(frozen=True)
class Document:
    name: str  # file name, its extension chooses the reader for tables
    data: bytes
    expected: list[Expected]
    style: str


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(EXOTIC))
    return " ".join(words)


def _question(rng: random.Random) -> str:
    return rng.choice(["What is", "How does", "Why is", "When should"]) + " " + _sentence(rng, rng.randint(1, 6)) + "?"


def _answer(rng: random.Random, style: str) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.15:
        return "", "missing"
    if roll < 0.22:
        return rng.choice(["TODO", "TBD", "Coming soon", "..."]), "missing"
    parts = [_sentence(rng, rng.randint(3, 25)).capitalize() + "."]
    if style in ("csv", "json", "jsonl"):
        return "\n".join(parts), "ok"
    if rng.random() < 0.3:
        parts.append("```\n**1. fake question inside code?**\nQ: not a question\n```")
    if rng.random() < 0.2:
        parts.append("| a | b |\n|---|---|\n| 1 | 2 |")
    if rng.random() < 0.2:
        parts.append(f"- first point\n  - nested {rng.choice(WORDS)}\n- a **bold start without end")
    if rng.random() < 0.2:
        parts.append("<script>alert(1)</script> and <img src=x onerror=alert(2)>")
    return "\n\n".join(parts), "ok"


def _decorate(rng: random.Random, question: str) -> str:
    return question + rng.choice(["", "", " ⭐️", " 🔥🔥", " (Hard)", " [[src](https://example.com/q)]"])


def generate(seed: int, style: str | None = None, entries: int | None = None) -> Document:
    rng = random.Random(seed)
    style = style or rng.choice(STYLES)
    n = entries or rng.randint(1, 25)
    numbers = list(range(1, n + 1))
    if rng.random() < 0.3:
        rng.shuffle(numbers)  # numbers out of order are kept as written
    items = [(_question(rng), *_answer(rng, style), numbers[i]) for i in range(n)]
    expected = [
        Expected(q, status, num if style not in ("bold_plain", "heading_question", "qa", "json", "jsonl") else i + 1)
        for i, (q, _, status, num) in enumerate(items)
    ]
    text = _render(rng, style, items)
    name = "doc." + (style if style in ("csv", "json", "jsonl") else rng.choice(["md", "txt", "markdown"]))
    data = text.encode("utf-8")
    encoding = rng.random()
    if style not in ("csv", "json", "jsonl") and encoding < 0.15:
        data = text.replace("\n", "\r\n").encode("utf-8")
    elif style not in ("csv", "json", "jsonl") and encoding < 0.25:
        data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    return Document(name, data, expected, style)


def _render(rng: random.Random, style: str, items: list) -> str:
    if style == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "question", "answer"])
        for q, a, _, num in items:
            writer.writerow([num, q, a])
        return out.getvalue()
    if style == "json":
        return json.dumps([{"question": q, "answer": a} for q, a, _, _ in items], ensure_ascii=False)
    if style == "jsonl":
        return "".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n" for q, a, _, _ in items)
    lines = ["# A generated FAQ", "", "Some preamble that is not an entry.", ""]
    for q, a, _, num in items:
        if style == "bold_numbered":
            lines.append(f"**{num}. {_decorate(rng, q)}**")
            lines.append(rng.choice(["", "\n*solution*", "\n*Solution:*", "\n**Answer:**"]))
        elif style == "bold_plain":
            lines.append(f"**{q}**" + rng.choice(["", " ⭐️"]))
        elif style == "list_bold":
            lines.append(f"{num}. **{q}**")
        elif style == "heading_numbered":
            lines.append(f"### {num}) {_decorate(rng, q)}")
        elif style == "heading_question":
            lines.append(f"{rng.choice(['##', '###'])} {q}")
        elif style == "qa":
            lines.append(f"Q: {q}")
            lines.append(f"A: {a}" if a else "A:")
            lines.append("")
            continue
        lines.extend(["", a, ""])
    lines.extend(["## References", "", "- [a link](https://example.com)", ""])
    return "\n".join(lines)


def broken(seed: int) -> tuple[str, bytes]:
    """Documents that must be refused with one clear line (name, bytes)."""
    rng = random.Random(seed)
    kind = seed % 9
    if kind == 0:
        return "empty.md", b""
    if kind == 1:
        return "blank.md", b" \n\t\n" * rng.randint(1, 50)
    if kind == 2:
        return "prose.md", ("# Title\n\n" + _sentence(rng, 40) + ".\n").encode()
    if kind == 3:
        return "binary.md", bytes(rng.randrange(256) for _ in range(rng.randint(10, 2000))) + b"\x00"
    if kind == 4:
        return "latin1.md", f"**1. {_question(rng)}**\n\ncaf\xe9 cr\xe8me\n".encode("latin-1")
    if kind == 5:
        return "missing_cols.csv", b"name,text\nx,y\n"
    if kind == 6:
        return "wrong_shape.json", json.dumps({"question": "x", "answer": "y"}).encode()
    if kind == 7:
        return "scalars.json", json.dumps([1, 2, 3]).encode()
    return "bad_lines.jsonl", b'{"question": "a", "answer": "b"}\n{not json}\n'
