"""The app listens on this machine only, unless told otherwise."""

import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page
from tests.app.test_browser import _free_port
from tests.conftest import ROOT


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _reachable(host: str, port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://{host}:{port}/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


def test_config_binds_to_localhost_with_xsrf_protection():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["server"]["enableXsrfProtection"] is True


def test_the_app_started_plainly_is_not_reachable_from_the_network(app_store):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--", "--db", str(app_store)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not _reachable("127.0.0.1", port) and time.time() < deadline:
            time.sleep(0.3)
        assert _reachable("127.0.0.1", port), "the app did not start"
        outside = _non_loopback_address()
        if outside is not None:  # a machine with a network interface: the app must not answer on it
            assert not _reachable(outside, port)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _websocket_status(port: int, host: str) -> int:
    """The HTTP status of a WebSocket handshake on the app's stream with ``host`` in Host and Origin."""
    import base64
    import os

    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: http://{host}:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        status_line = s.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1])


def test_a_rebound_host_name_cannot_open_the_app(app_store):
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 sends Host: evil.example."""
    from tests.app.test_browser import start_app

    proc, url = start_app(app_store)
    port = int(url.rsplit(":", 1)[1])
    try:
        assert _websocket_status(port, "evil.example") == 403
        assert _websocket_status(port, "127.0.0.1") == 101
        assert _websocket_status(port, "localhost") == 101
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_store_made_outside_lossmap_is_refused_in_plain_words(app, store):
    """A shared store whose macro is named like a Markdown link: refused, and the name shown as text."""
    import duckdb

    con = duckdb.connect(str(store))
    con.execute('CREATE MACRO "[open me](https://evil.example)"(x) AS x')
    con.close()
    app.run()
    assert not app.exception
    shown = " ".join(i.value for i in app.info)
    assert "which a Lossmap store never has" in shown
    assert "[open me](" not in shown and "https://evil" not in shown  # escaped: no link is rendered
    assert "open me" in shown


def _open_in_sidebar(app, path) -> str:
    """A session whose Store box holds ``path`` (AppTest drops the router's sidebar on later runs: a first run)."""
    app.session_state["db_path"] = str(path)
    app.run(timeout=20)  # a FIFO opened would hang here
    assert not app.exception
    return " ".join(i.value for i in app.info)


def test_the_store_box_opens_only_regular_files_in_the_served_folders(store, tmp_path, monkeypatch):
    import os

    from pages.common.state import store_problem

    monkeypatch.setenv("LOSSMAP_DB", str(store))
    outside = "is outside the folders this app serves stores from"
    for path in ("/etc/passwd", "/no/such/file.duckdb", tmp_path / ".." / "elsewhere.duckdb"):
        assert outside in store_problem(Path(path)), path  # the same answer whether it exists or not
    (tmp_path / "hostname.duckdb").symlink_to("/etc/hostname")
    assert outside in store_problem(tmp_path / "hostname.duckdb")  # a link out is judged by its target
    os.mkfifo(tmp_path / "pipe.duckdb")
    assert "is not a regular file" in store_problem(tmp_path / "pipe.duckdb")
    assert "No store at" in store_problem(tmp_path / "later.duckdb")
    assert store_problem(store) is None


def test_the_store_box_says_so_in_the_app_and_a_fifo_does_not_hang_it(store, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("LOSSMAP_DB", str(store))
    os.mkfifo(tmp_path / "pipe.duckdb")
    for path, said in (("/etc/passwd", "is outside the folders this app serves stores from"),
                       (tmp_path / "pipe.duckdb", "is not a regular file")):
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        assert said in _open_in_sidebar(app, path)


def test_the_person_who_starts_the_app_can_serve_more_folders(store, tmp_path_factory, monkeypatch):
    import shutil
    import sys

    from pages.common.state import store_problem

    monkeypatch.setenv("LOSSMAP_DB", str(store))
    other = tmp_path_factory.mktemp("other")
    shutil.copyfile(store, other / "copy.duckdb")
    assert "is outside the folders" in store_problem(other / "copy.duckdb")
    monkeypatch.setattr(sys, "argv", ["app.py", "--store-folder", str(other)])
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    assert _open_in_sidebar(app, other / "copy.duckdb") == ""
    assert app.metric  # the Overview of the copy
    monkeypatch.setattr(sys, "argv", ["app.py", "--any-store"])
    assert "is not a regular file" in store_problem(Path("/dev/null"))


def test_an_empty_store_box_and_unknown_app_options_are_said(store, monkeypatch):
    import sys

    from pages.common.state import store_problem

    monkeypatch.setenv("LOSSMAP_DB", str(store))
    for empty in ("", " ", "."):
        assert store_problem(Path(empty)).startswith("Enter the path of a store")
    monkeypatch.setattr(sys, "argv", ["app.py", "--store-folders", "/x", "--any_store"])
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    warned = " ".join(w.value for w in app.sidebar.warning).replace("\\", "")
    assert "options it does not know: --store-folders /x --any_store" in warned and "--store-folder DIR" in warned


def test_a_store_path_no_file_system_takes_is_said_in_one_line(store, monkeypatch):
    from pages.common.state import store_problem

    monkeypatch.setenv("LOSSMAP_DB", str(store))
    assert "cannot be a store path" in store_problem(Path(str(store.parent) + "/a\x00b.duckdb"))
    assert "cannot be a store path" in store_problem(store.parent / ("x" * 5000 + ".duckdb"))


def test_a_truncated_store_is_said_not_raised(app, store):
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 3])
    app.run()
    assert not app.exception
    said = " ".join(e.value for e in app.error) + " ".join(i.value for i in app.info)
    assert "store" in said.lower()


def test_a_store_whose_run_columns_hold_other_json_still_shows_its_pages(app, store):
    """A foreign store's notes, warnings and settings of another shape (or a link for a setting): the Overview and
    Truncation pages render what has the right shape and nothing else, and no link."""
    import duckdb

    con = duckdb.connect(str(store))
    deep = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON parser goes
    con.execute("""UPDATE runs SET load_notes = ?, load_warnings = '[1, 2]', columns = '{"score": [1]}',
                   config = '{"max_len": "[x](https://evil.example)", "truncation": "[y](https://evil.example)"}'""",
                [deep])
    con.close()
    open_page(app, "pages/overview.py", "Overview")
    assert not any("How the data was read" in e.label for e in app.expander)
    open_page(app, "pages/truncation.py", "Truncation")
    shown = " ".join(str(m.value) + str(m.help) for m in app.metric) + " ".join(c.value for c in app.caption)
    assert "? words" in shown and "truncation: " in shown and "](https://evil" not in shown  # escaped, not a link
