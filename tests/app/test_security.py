"""The app listens on this machine only, unless told otherwise."""

import socket
import subprocess
import sys
import time
import tomllib
import urllib.request

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
