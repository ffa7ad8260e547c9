"""Topics, map, near-duplicates and missing-answer hints on the bundled corpus (real vectors)."""

from __future__ import annotations

import json

import numpy as np

from indexer.analysis.topics import cluster, spherical_kmeans, topic_map
from indexer.cli import main


def test_the_known_duplicate_pairs_are_found_without_a_flood(real_index):
    pairs = {tuple(sorted(d.to_dict()["ids"])) for d in real_index.duplicates()}
    assert {(15, 31), (16, 81), (17, 57), (22, 74)} <= pairs
    assert len(pairs) <= 12


def test_every_entry_lands_in_exactly_one_topic_and_labels_differ(real_index):
    found = real_index.topics()
    ids = [record_id for topic in found for record_id in topic.record_ids]
    assert sorted(ids) == sorted(r.id for r in real_index.records)
    labels = [t.label for t in found]
    assert all(labels) and len(set(labels)) == len(labels) and len(found) >= 3


def test_hints_for_a_missing_answer_point_at_the_entry_that_answers_it(real_index):
    assert 15 in [h.record.id for h in real_index.hints(31)]
    assert all(h.record.has_answer for h in real_index.hints(31))


def test_the_map_has_one_point_per_entry_with_its_topic(real_index):
    found = real_index.topics()
    points = topic_map(real_index.stored, found)
    assert [p.id for p in points] == [r.id for r in real_index.records]
    assert {p.topic for p in points} == {t.number for t in found}
    assert sum(p.status == "missing" for p in points) == 10


def test_kmeans_separates_obvious_groups_and_cluster_is_deterministic():
    rng = np.random.default_rng(3)
    centres = np.eye(8)[:4]
    vectors = np.vstack([c + 0.05 * rng.normal(size=(30, 8)) for c in centres])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = spherical_kmeans(vectors, 4)
    assert all(len(set(labels[i * 30 : (i + 1) * 30])) == 1 for i in range(4))
    assert np.array_equal(cluster(vectors), cluster(vectors))


def test_topics_duplicates_and_missing_hints_on_the_cli(real_index, tmp_path, capsys):
    index_dir = str(real_index.stored.path.parent)
    assert main(["duplicates", "--json", "--index-dir", index_dir]) == 0
    pairs = json.loads(capsys.readouterr().out)
    assert all(set(p) == {"ids", "score"} for p in pairs)
    plot = tmp_path / "map.html"
    assert main(["topics", "--json", "--plot", str(plot), "--index-dir", index_dir]) == 0
    assert len(json.loads(capsys.readouterr().out)) >= 3 and "vega" in plot.read_text()
    png = tmp_path / "map.png"
    assert main(["topics", "--plot", str(png), "--index-dir", index_dir]) == 0
    capsys.readouterr()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert main(["missing", "--json", "--index-dir", index_dir]) == 0
    missing = json.loads(capsys.readouterr().out)["missing"]
    assert 15 in [h["id"] for h in next(m for m in missing if m["id"] == 31)["hints"]]
