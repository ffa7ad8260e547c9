"""A killed build never harms the index; readers during rebuilds always get a complete index."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docgen import generate
from drivers import answer

DRIVER = str(Path(__file__).resolve().parent / "drivers.py")
KILLS = 20
REBUILDS = 20


def driver(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, DRIVER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    """Two different 3,000-entry documents, and the answer a reader must get from an index of each."""
    folder = tmp_path_factory.mktemp("sources")
    sources, expected = [], {}
    for name, seed in (("a.md", 1), ("b.md", 2)):
        path = folder / name
        path.write_bytes(generate(seed, style="bold_numbered", entries=3000).data)
        index_dir = folder / f"index-{name}"
        assert subprocess.run([sys.executable, DRIVER, "build", str(path), str(index_dir)]).returncode == 0
        seen = answer(index_dir)
        expected[seen["sha"]] = seen
        sources.append(path)
    assert len(expected) == 2
    return sources, expected


def test_builds_killed_at_random_points_leave_a_complete_index(tmp_path, two_sources):
    (source_a, source_b), expected = two_sources
    index_dir = tmp_path / "index"
    assert subprocess.run([sys.executable, DRIVER, "build", str(source_a), str(index_dir)]).returncode == 0
    started = time.perf_counter()
    assert subprocess.run([sys.executable, DRIVER, "build", str(source_b), str(index_dir)]).returncode == 0
    full_build = time.perf_counter() - started
    rng = random.Random(42)
    killed = 0
    for i in range(KILLS):
        before = answer(index_dir)
        proc = driver("build", str(source_a if i % 2 else source_b), str(index_dir))
        time.sleep(rng.uniform(0.05, full_build * 1.1))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        after = answer(index_dir)
        assert after == expected[after["sha"]]  # a complete generation, old or new
        if proc.returncode == -signal.SIGKILL:
            assert after in (before, expected[after["sha"]])
    assert killed >= KILLS // 2
    print(f"\n[robustness] {KILLS} builds started, {killed} SIGKILLed mid-build, index intact after every one")
    # the next successful build removes what the killed ones left behind
    assert subprocess.run([sys.executable, DRIVER, "build", str(source_a), str(index_dir)]).returncode == 0
    assert not [p for p in index_dir.iterdir() if p.name.endswith(".tmp")]
    assert len([p for p in index_dir.iterdir() if p.name.startswith("build-")]) <= 2


def test_readers_during_repeated_rebuilds_never_fail_or_see_a_mix(tmp_path, two_sources):
    (source_a, source_b), expected = two_sources
    index_dir = tmp_path / "index"
    assert subprocess.run([sys.executable, DRIVER, "build", str(source_a), str(index_dir)]).returncode == 0
    builder = driver("rebuild", str(source_a), str(source_b), str(index_dir), str(REBUILDS))
    stop = tmp_path / "stop"
    reader = driver("query", str(index_dir), str(stop))
    try:
        builder_out, builder_err = builder.communicate(timeout=600)
    finally:
        stop.touch()
        reader_out, _ = reader.communicate(timeout=60)
    assert builder.returncode == 0, builder_err
    assert builder_out.count("built") == REBUILDS
    answers = [json.loads(line) for line in reader_out.splitlines()]
    errors = [a for a in answers if "error" in a]
    assert not errors, errors[:3]
    assert len(answers) >= REBUILDS
    assert all(a == expected[a["sha"]] for a in answers)
    assert {a["sha"] for a in answers} == set(expected)  # both generations were actually read
    print(f"\n[robustness] {REBUILDS} rebuilds, {len(answers)} queries answered meanwhile, 0 errors, 0 mixed")


def test_two_builds_at_once_both_finish_and_leave_a_valid_index(tmp_path, two_sources):
    (source_a, source_b), expected = two_sources
    index_dir = tmp_path / "index"
    first, second = driver("build", str(source_a), str(index_dir)), driver("build", str(source_b), str(index_dir))
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    seen = answer(index_dir)
    assert seen == expected[seen["sha"]]
