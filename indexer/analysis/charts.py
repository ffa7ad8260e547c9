"""The topic map as an Altair chart (Altair comes with Streamlit): shared by the app and `topics --plot`.

Hover shows the question, colour is the topic, missing answers are drawn as crosses. Saved as HTML
(self-contained apart from the Vega scripts it loads) or, when vl-convert-python is installed, PNG.
"""

from __future__ import annotations

from pathlib import Path

from indexer.analysis.topics import MapPoint, Topic
from indexer.errors import IndexerError

_STATUS_NAMES = {"ok": "answered", "missing": "missing answer", "link_only": "link only"}


def topic_map_chart(points: list[MapPoint], found: list[Topic]):
    import altair as alt
    import pandas as pd

    labels = {t.number: f"{t.number}. {t.label}" for t in found}
    frame = pd.DataFrame(
        [
            {
                "id": str(p.id),
                "x": p.x,
                "y": p.y,
                "topic": labels.get(p.topic, str(p.topic)),
                "status": _STATUS_NAMES.get(p.status, p.status),
                "question": p.question,
            }
            for p in points
        ]
    )
    return (
        alt.Chart(frame)
        .mark_point(filled=True, size=80, opacity=0.8)
        .encode(
            x=alt.X("x", axis=None),
            y=alt.Y("y", axis=None),
            # ten distinct hues (the default scheme pairs shades of one hue); whole topic labels in the legend
            color=alt.Color(
                "topic",
                scale=alt.Scale(scheme="tableau10"),
                legend=alt.Legend(title="topic", orient="bottom", columns=2, labelLimit=0),
            ),
            shape=alt.Shape(
                "status", scale=alt.Scale(domain=list(_STATUS_NAMES.values()), range=["circle", "cross", "triangle"])
            ),
            tooltip=["id", "question", "topic", "status"],
        )
        .properties(height=480)
    )


def save_chart(chart, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".html", ".png"):
        raise IndexerError(f"{path}: the map can be saved as .html or .png")
    try:
        chart.save(str(path))
    except (ValueError, ImportError) as exc:
        if suffix == ".png":
            raise IndexerError(
                "saving PNG needs the vl-convert-python package (in requirements.txt); save as .html instead"
            ) from None
        raise IndexerError(f"{path}: cannot save the map ({exc})") from None
    except OSError as exc:
        raise IndexerError(f"{path}: cannot be written ({exc.strerror or exc})") from None
