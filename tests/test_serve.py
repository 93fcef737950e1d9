"""The results browser: the index, reports and files over HTTP, nothing outside the store,
and what a real browser shows (screenshots kept under test-artefacts/)."""
from __future__ import annotations

import http.client
import os
import pathlib
import re
import shutil
import subprocess
import threading

import pytest

from harness.report import write_report
from harness.serve import make_server
from testkit.browser import CHROMIUM
from tests.test_report import make_run_dir

ARTEFACTS = pathlib.Path(__file__).resolve().parent.parent / "test-artefacts"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("serve")
    store = tmp_path / "store"
    ok = make_run_dir(store, "raftkv-register", valid=True, stamp="20240102T030405.678")
    bad = make_run_dir(store, "raftkv-list-append", valid=False, checker="elle", workload="list-append",
                       stamp="20240103T101112.131")
    for run in (ok, bad):
        write_report(str(run))
    crashed = store / "etcd-set" / "20240104T000000.000"
    crashed.mkdir(parents=True)
    (crashed / "spec.yaml").write_text("name: etcd-set\ntarget: etcd\nworkload: set\n")
    (store / "campaigns" / "smoke").mkdir(parents=True)
    (store / "campaigns" / "smoke" / "campaign.html").write_text("<h1>Campaign smoke</h1>")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "secret.txt").write_text("do not serve")
    (store / "escape").symlink_to(secret)
    (store / "raftkv-register" / "leak.txt").symlink_to(secret / "secret.txt")
    return store


@pytest.fixture(scope="module")
def server(store):
    srv = make_server(str(store), port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def get(server, path: str, method: str = "GET") -> tuple[int, dict, str]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_binds_to_loopback_by_default(store):
    srv = make_server(str(store), port=0)
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.server_close()


def test_index_lists_runs_newest_first_with_verdicts_and_links(server):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    names = re.findall(r"<tr data-verdict=\"(\w+)\"><td>([\w-]+)</td>", body)
    assert names == [("unknown", "etcd-set"), ("invalid", "raftkv-list-append"), ("valid", "raftkv-register")]
    assert "NO RESULTS" in body and "G1c" in body and "2024-01-03 10:11:12" in body
    assert 'href="/raftkv-list-append/20240103T101112.131/report.html"' in body
    assert 'href="/campaigns/smoke/campaign.html"' in body
    assert "partition, kill" in body and "stale-reads" in body
    assert 'id="q"' in body  # the filter


def test_reports_files_and_directories_are_served(server):
    status, headers, body = get(server, "/raftkv-register/20240102T030405.678/report.html")
    assert status == 200 and "VALID" in body
    assert headers["X-Content-Type-Options"] == "nosniff" and "default-src 'none'" in headers["Content-Security-Policy"]
    status, headers, body = get(server, "/latest/history.jsonl")  # store/latest points inside the store
    assert status == 200 and headers["Content-Type"] == "text/plain; charset=utf-8" and '"f": ' in body
    status, headers, _ = get(server, "/raftkv-register/20240102T030405.678/latency.png", "HEAD")
    assert status == 200 and headers["Content-Type"] == "image/png" and int(headers["Content-Length"]) > 1000
    status, headers, _ = get(server, "/raftkv-register/20240102T030405.678")
    assert status == 301 and headers["Location"] == "/raftkv-register/20240102T030405.678/"
    status, _, body = get(server, "/raftkv-register/20240102T030405.678/")
    assert status == 200 and 'href="timeline.html"' in body and 'href="elle/"' not in body


@pytest.mark.parametrize("path", [
    "/../secret/secret.txt", "/%2e%2e/secret/secret.txt", "/%2E%2E%2Fsecret%2Fsecret.txt",
    "/raftkv-register/..%2f..%2fsecret/secret.txt", "/%252e%252e/secret/secret.txt",
    "/escape/secret.txt", "/escape/", "/raftkv-register/leak.txt", "/..%5c..%5csecret/secret.txt",
    "/%00", "/nope.html", "//etc/passwd", "/raftkv-register/20240102T030405.678/../../../secret/secret.txt",
])
def test_nothing_outside_the_store_is_served(server, path):
    status, _, body = get(server, path)
    assert status == 404 and "do not serve" not in body


def _screenshot(url: str, out: pathlib.Path, tmp_path: pathlib.Path) -> None:
    profile = tmp_path / f"profile-{out.stem}"
    try:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={out}",
                        "--window-size=1280,900", "--virtual-time-budget=3000", url],
                       capture_output=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.slow
def test_a_real_browser_shows_the_index_and_a_report(server, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    ARTEFACTS.mkdir(exist_ok=True)
    host, port = server.server_address[:2]
    base = f"http://{host}:{port}"
    shots = {"serve-index.png": f"{base}/",
             "serve-report-invalid.png": f"{base}/raftkv-list-append/20240103T101112.131/report.html",
             "serve-timeline.png": f"{base}/raftkv-register/20240102T030405.678/timeline.html"}
    for name, url in shots.items():
        out = ARTEFACTS / name
        out.unlink(missing_ok=True)
        _screenshot(url, out, tmp_path)
        assert out.exists() and out.stat().st_size > 10_000, f"no screenshot of {url}"
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    profile = tmp_path / "profile-dom"
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", f"--user-data-dir={profile}",
                          "--virtual-time-budget=3000", "--dump-dom", f"{base}/"],
                         capture_output=True, text=True, timeout=120).stdout
    shutil.rmtree(profile, ignore_errors=True)
    assert "3 of 3 shown" in dom  # the filter script ran


def _get_with_host(server, host_header: str) -> int:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest("GET", "/", skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host_header)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("host_header,status", [
    ("evil.example", 421), ("evil.example:8080", 421), ("127.0.0.1.evil.example", 421),
    ("localhost:8080", 200), ("127.0.0.1:8080", 200), ("[::1]:8080", 200), ("LOCALHOST", 200),
])
def test_a_page_on_another_name_cannot_read_the_store_by_dns_rebinding(server, host_header, status):
    assert _get_with_host(server, host_header) == status


def test_names_the_user_allows_are_served(store):
    srv = make_server(str(store), port=0, allowed_hosts=("results.lab",))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        assert _get_with_host(srv, "results.lab:8080") == 200
        assert _get_with_host(srv, "other.lab") == 421
    finally:
        srv.shutdown()
        srv.server_close()


def test_an_idle_connection_is_closed_and_holds_no_thread(store):
    import socket
    import time
    srv = make_server(str(store), port=0, idle_timeout=0.5)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        idle = socket.create_connection(srv.server_address[:2], timeout=10)
        began = time.monotonic()
        # The handler closes the socket as it returns: the hang-up is its thread ending.
        assert idle.recv(1) == b""
        assert time.monotonic() - began < 5
        idle.close()
    finally:
        srv.shutdown()
        srv.server_close()
