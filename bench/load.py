"""Many users at once: N concurrent Streamlit sessions searching through `?q=`, over the app's websocket
(no browser), on this machine only. Prints the latency of a page run (p50, p95) and page runs per second.

    .venv/bin/python bench/load.py                       # 1 user, then 20 users; starts its own server
    .venv/bin/python bench/load.py --users 1,5,20 --runs 10
    .venv/bin/python bench/load.py --processes 2         # 2 app processes, each user sticks to one
    .venv/bin/python bench/load.py --port 8501           # against a running `streamlit run app.py`

Each virtual user opens one session (as a browser tab does), then asks queries from eval/dev_queries.jsonl
one after another: a `rerun_script` BackMsg whose query_string is "q=<query>", flagged as a history
navigation, timed until the server's `script_finished` ForwardMsg. That is what the browser sends on
Back or Forward, and the app takes its page state from that query string (on other reruns the widgets
lead). The first run of a session (a fresh page) is timed apart.

The servers it starts serve a copy of the bundled index in a temporary folder, so their searches are
logged there and never in index/querylog.sqlite. Bounded on purpose: loopback only, at most MAX_USERS
sessions and MAX_RUNS runs each, and every wait has a deadline. What it does not measure: the
browser's rendering, or the network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from servers import free_port, launch_streamlit, stop_streamlit  # noqa: E402

from indexer.stores.spec import STORE_ENV  # noqa: E402

MAX_USERS = 50
MAX_RUNS = 100
MAX_PROCESSES = 8
RUN_TIMEOUT = 60.0  # seconds one page run may take before the benchmark gives up


def queries() -> list[str]:
    lines = (ROOT / "eval" / "dev_queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["query"] for line in lines if line.strip()]


def rerun_message(query: str) -> bytes:
    from streamlit.proto.BackMsg_pb2 import BackMsg

    message = BackMsg()
    message.rerun_script.query_string = urlencode({"q": query})
    message.rerun_script.page_script_hash = ""
    message.rerun_script.is_history_navigation = True
    return message.SerializeToString()


async def page_run(websocket, query: str) -> float:
    """Seconds from asking for a run with ?q=query to the server saying the script finished."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    started = time.perf_counter()
    await websocket.send(rerun_message(query))
    while True:
        message = ForwardMsg()
        message.ParseFromString(await asyncio.wait_for(websocket.recv(), RUN_TIMEOUT))
        if message.WhichOneof("type") == "script_finished":
            if message.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                continue  # not ours to time: the next script_finished ends this run
            return time.perf_counter() - started


async def one_user(port: int, user: int, runs: int, first: list[float], later: list[float]) -> None:
    """One browser tab: a session on one process (a reverse proxy with sticky sessions keeps it there)."""
    import websockets

    asked = queries()
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None, open_timeout=RUN_TIMEOUT
    ) as websocket:
        first.append(await page_run(websocket, asked[user % len(asked)]))
        for run in range(runs):
            later.append(await page_run(websocket, asked[(user * 7 + run + 1) % len(asked)]))


async def load(ports: list[int], users: int, runs: int) -> tuple[list[float], list[float], float]:
    """`users` sessions at once, spread over the processes in turn."""
    first: list[float] = []
    later: list[float] = []
    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(one_user(ports[u % len(ports)], u, runs, first, later) for u in range(users))),
        timeout=RUN_TIMEOUT * (runs + 1) * 2,
    )
    return first, later, time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def cpu_seconds(servers: list[subprocess.Popen]) -> float:
    """User + system CPU time the server processes have used (Linux /proc), or nan when unknown."""
    if not servers:
        return float("nan")
    total = 0.0
    for server in servers:
        try:
            fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def report(users: int, processes: int, first: list[float], later: list[float], seconds: float, cpu: float) -> str:
    """One line; `cpu` is the servers' CPU seconds over the phase, a cost per run that other load on
    the machine does not inflate the way it inflates latency."""
    return (
        f"{users:>3} users on {processes} process{'es' if processes > 1 else ''}: "
        f"page run p50 {statistics.median(later) * 1000:6.0f} ms, "
        f"p95 {percentile(later, 0.95) * 1000:6.0f} ms, {len(later) / seconds:5.1f} runs/s "
        f"({len(later)} runs in {seconds:.1f} s); server CPU per run "
        f"{cpu / (len(first) + len(later)) * 1000:.0f} ms; first run of a session p50 "
        f"{statistics.median(first) * 1000:.0f} ms"
    )


def start_server(port: int) -> subprocess.Popen:
    """`streamlit run app.py` on loopback, own process group; returns once /_stcore/health says ok."""
    server = launch_streamlit(port)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"streamlit exited with {server.returncode}")
        try:
            with opener.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return server
        except OSError:
            time.sleep(0.2)
    stop_streamlit(server)
    raise SystemExit("streamlit did not become healthy within 60 s")


def bundled_index_copy() -> str:
    """A temporary folder holding a copy of the bundled corpus's current index (built first if needed)."""
    from indexer import DEFAULT_INDEX_DIR, QAIndex

    QAIndex.open(index_dir=DEFAULT_INDEX_DIR)
    generation = (DEFAULT_INDEX_DIR / "current").resolve()
    folder = Path(tempfile.mkdtemp(prefix="load-bench-index-"))
    shutil.copytree(generation, folder / generation.name)
    (folder / "current").symlink_to(generation.name)
    return str(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1,20", help="comma-separated concurrent session counts (default 1,20)")
    parser.add_argument("--runs", type=int, default=10, help="timed page runs per user after its first")
    parser.add_argument("--processes", type=int, default=1, help="app processes to start (default 1)")
    parser.add_argument("--port", help="comma-separated ports of apps already running on 127.0.0.1 (default: start)")
    args = parser.parse_args()
    counts = [int(n) for n in args.users.split(",")]
    if not all(1 <= n <= MAX_USERS for n in counts) or not 1 <= args.runs <= MAX_RUNS:
        parser.error(f"users must be 1..{MAX_USERS} and runs 1..{MAX_RUNS}")
    if not 1 <= args.processes <= MAX_PROCESSES:
        parser.error(f"processes must be 1..{MAX_PROCESSES}")
    ports = [int(p) for p in args.port.split(",")] if args.port else [free_port() for _ in range(args.processes)]
    servers: list[subprocess.Popen] = []
    store = None if args.port else bundled_index_copy()
    try:
        if store:
            os.environ[STORE_ENV] = store  # the servers' searches are logged there, not in index/
            servers = [start_server(port) for port in ports]
        for port in ports:  # warm up: model, index and caches load once per process
            asyncio.run(load([port], 1, 2))
        for users in counts:
            before = cpu_seconds(servers)
            first, later, seconds = asyncio.run(load(ports, users, args.runs))
            print(report(users, len(ports), first, later, seconds, cpu_seconds(servers) - before), flush=True)
    finally:
        for server in servers:
            stop_streamlit(server)
        if store:
            shutil.rmtree(store)
    return 0


if __name__ == "__main__":
    sys.exit(main())
