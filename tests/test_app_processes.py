"""Several app processes over one store, as docs/app.md deploys them behind a reverse proxy with sticky
sessions: each session below keeps one websocket to one `streamlit run app.py` process (what the proxy
guarantees), and both processes serve the same data folder from the same index folders.

Driven over Streamlit's own websocket protocol (no browser): a `rerun_script` message per page run,
read until `script_finished`. The page's text is the Markdown and callouts the run drew.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import streamlit_server
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from test_app import copy_bundled_index
from websockets.sync.client import ClientConnection, connect

from indexer.stores.spec import STORE_ENV

RUN_TIMEOUT = 120.0  # seconds: a run that builds an index embeds with the real model
TEAM_FAQ = """\
**1. How do I request a parking permit?**

Fill in the facilities form on the intranet; permits are mailed within a week.

**2. Who approves travel expenses?**

Your line manager approves them in the expenses tool before the finance team pays out.
"""
ADDED_ENTRY = """
**3. What do I do when my building badge stops working?**

Take it to the security desk in the lobby; they re-encode it while you wait.
"""
BADGE_QUERY = "my door access card no longer opens the office"
BADGE_ENTRY = "What do I do when my building badge stops working?"


class Session:
    """One browser tab's session on one process: runs the page and returns what it drew."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.widgets: dict[str, str] = {}  # widget id -> the option chosen (selectboxes)
        self.selectboxes: dict[str, str] = {}  # label -> widget id, from the page's last run

    def run(self, query: str, document: str | None = None) -> str:
        """A page run with ?q=query (as Back to that search sends it), `document` chosen in the sidebar;
        the text of every Markdown element and callout it drew, one per line."""
        message = BackMsg()
        message.rerun_script.query_string = urlencode({"q": query})
        message.rerun_script.is_history_navigation = True
        if document is not None:
            self.widgets[self.selectboxes["Document"]] = document
        for widget_id, value in self.widgets.items():  # the browser sends every widget's value each run
            state = message.rerun_script.widget_states.widgets.add()
            state.id, state.string_value = widget_id, value
        self.socket.send(message.SerializeToString())
        return "\n".join(self._drawn())

    def _drawn(self) -> Iterator[str]:
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            reply = ForwardMsg()
            reply.ParseFromString(self.socket.recv(timeout=max(1.0, deadline - time.monotonic())))
            kind = reply.WhichOneof("type")
            if kind == "script_finished" and reply.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return
            if kind != "delta" or reply.delta.WhichOneof("type") != "new_element":
                continue
            element = reply.delta.new_element
            field = element.WhichOneof("type")
            if field == "selectbox":
                self.selectboxes[element.selectbox.label] = element.selectbox.id
            elif field in ("markdown", "alert"):
                yield getattr(element, field).body


@contextmanager
def session(url: str) -> Iterator[Session]:
    with connect(url.replace("http://", "ws://") + "/_stcore/stream", subprotocols=["streamlit"]) as socket:
        yield Session(socket)


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """Two app processes sharing one data folder (holding team.md), one cache of index folders and one
    bundled index; yields their URLs and team.md."""
    data = tmp_path / "data"
    data.mkdir()
    team = data / "team.md"
    team.write_text(TEAM_FAQ, encoding="utf-8")
    env = {
        "INDEXER_DATA_DIR": str(data),
        "INDEXER_CACHE_DIR": str(tmp_path / "cache"),
        STORE_ENV: str(copy_bundled_index(tmp_path / "bundled")),
    }
    with ExitStack() as servers:
        urls = [servers.enter_context(streamlit_server(tmp_path / f"streamlit-{n}.log", env)) for n in (1, 2)]
        yield urls[0], urls[1], team


def generations(cache: Path) -> list[str]:
    """The build folders of every index under the app's cache (one per build)."""
    return sorted(p.name for p in (cache / "indexes").glob("*/build-*"))


def test_two_processes_share_one_store_and_a_rebuild_by_one_is_served_by_both(two_processes):
    first_url, second_url, team = two_processes
    cache = team.parent.parent / "cache"
    with ExitStack() as tabs:
        first, second = (tabs.enter_context(session(url)) for url in (first_url, second_url))
        for tab in (first, second):
            tab.run(BADGE_QUERY)  # the bundled corpus, as a fresh page opens
        page = first.run("who signs off on my travel costs", document="team.md")  # the first process builds
        assert "Who approves travel expenses?" in page
        built = generations(cache)
        assert len(built) == 1
        page = second.run("who signs off on my travel costs", document="team.md")  # the second opens that build
        assert "Who approves travel expenses?" in page and generations(cache) == built
        assert BADGE_ENTRY not in second.run(BADGE_QUERY, document="team.md")

        team.write_text(TEAM_FAQ + ADDED_ENTRY, encoding="utf-8")  # the document is edited
        page = first.run(BADGE_QUERY, document="team.md")  # the first process to run rebuilds it ...
        assert BADGE_ENTRY in page
        rebuilt = generations(cache)
        assert len(rebuilt) == 2 and set(built) < set(rebuilt)
        page = second.run(BADGE_QUERY, document="team.md")  # ... and the other serves that rebuild
        assert BADGE_ENTRY in page
        assert generations(cache) == rebuilt  # without building again
