"""`tectonic serve`: browse the results store over HTTP.

The index lists every run (test, time, target, workload, nemesis, verdict, anomalies) with
a filter, and links each run's report and files; campaigns are listed too. Only files under
the store are ever served: the request path is decoded once, any `..` is refused, and the
resolved real path (symlinks followed) must lie inside the store's real path, so a symlink
pointing out of the store is a 404 like any other path outside it. Binds to loopback
unless told otherwise.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

from harness.report.html import esc, page
from harness.report.rundir import is_run_dir, read_results, read_spec, run_started
from harness.report.summary import anomaly_types, verdict_word

_TEXT_TYPES = {".jsonl", ".log", ".yaml", ".yml", ".txt", ".dot", ".edn", ".out", ".err", ".csv"}
_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
          ".png": "image/png", ".xml": "application/xml", ".css": "text/css"}
# Our pages need inline scripts, styles and data: images, and nothing from elsewhere.
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'")


# An idle connection (keep-alive, or one that never sends its request) is closed after this
# many seconds, so idle clients cannot hold the server's threads forever.
IDLE_TIMEOUT = 30.0


class StoreServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: str, address: tuple[str, int], *, allowed_hosts: tuple[str, ...] = (),
                 idle_timeout: float = IDLE_TIMEOUT):
        if not os.path.isdir(store):
            raise ValueError(f"{store}: no such results store (run a test first, or pass --store)")
        self.store = os.path.realpath(store)
        self.allowed_hosts = {h.lower() for h in allowed_hosts} | {"localhost"}
        self.idle_timeout = idle_timeout
        self._summaries: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()
        super().__init__(address, StoreHandler)

    def run_summary(self, run_dir: str) -> dict:
        """What the index shows of a run, re-read only when its results.json changes
        (results of big runs are megabytes of anomalies)."""
        results_path = os.path.join(run_dir, "results.json")
        try:
            mtime = os.path.getmtime(results_path)
        except OSError:
            mtime = -1.0
        with self._lock:
            cached = self._summaries.get(run_dir)
        if cached and cached[0] == mtime:
            return cached[1]
        spec, results = read_spec(run_dir), read_results(run_dir)
        summary = {
            "target": spec.get("target", ""), "workload": spec.get("workload", ""),
            "nemesis": ", ".join(spec.get("nemesis") or []) if isinstance(spec.get("nemesis"), list)
            else str(spec.get("nemesis") or ""),
            "bugs": ", ".join(spec.get("bugs") or []) if isinstance(spec.get("bugs"), list) else "",
            "verdict": verdict_word(results.get("valid")) if results else "unknown",
            "finished": results is not None,
            "anomalies": ", ".join(anomaly_types(results)),
        }
        with self._lock:
            self._summaries[run_dir] = (mtime, summary)
        return summary


class StoreHandler(BaseHTTPRequestHandler):
    server: StoreServer
    server_version = "tectonic"

    def setup(self):
        # StreamRequestHandler applies `timeout` to the socket: an idle read ends the
        # connection (BaseHTTPRequestHandler closes it on the timeout) instead of a thread.
        self.timeout = self.server.idle_timeout
        super().setup()

    def do_GET(self):
        self._answer(send_body=True)

    def do_HEAD(self):
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        host = self.headers.get("Host")
        if host is not None and not host_allowed(host, self.server.allowed_hosts):
            # DNS rebinding: a page on evil.example re-points its name at 127.0.0.1 and reads
            # the store with the browser's help; its requests still say Host: evil.example.
            self._send(HTTPStatus.MISDIRECTED_REQUEST, "text/plain; charset=utf-8",
                       f"Host {host!r} is not served here; start `tectonic serve --allow-host NAME` "
                       f"to allow a name\n".encode(), send_body)
            return
        url_path = urlsplit(self.path).path
        if url_path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", index_page(self.server).encode(), send_body)
            return
        target = self._resolve(url_path)
        if target is None:
            self._send(HTTPStatus.NOT_FOUND, "text/html; charset=utf-8",
                       page("not found", "<h1>Not found</h1><p><a href=\"/\">all runs</a></p>").encode(), send_body)
        elif os.path.isdir(target):
            if not url_path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", url_path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(HTTPStatus.OK, "text/html; charset=utf-8",
                       directory_page(self.server.store, target).encode(), send_body)
        else:
            self._send_file(target, send_body)

    def _resolve(self, url_path: str) -> str | None:
        """The real path inside the store that url_path names, or None (a 404)."""
        rel = unquote(url_path)
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if "\x00" in rel or any(p == ".." for p in parts):
            return None
        real = os.path.realpath(os.path.join(self.server.store, *parts))
        if real != self.server.store and not real.startswith(self.server.store + os.sep):
            return None
        return real if os.path.exists(real) else None

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, send_body: bool) -> None:
        self.send_response(status)
        self._headers(content_type, len(body))
        if send_body:
            self.wfile.write(body)

    def _send_file(self, path: str, send_body: bool) -> None:
        ext = os.path.splitext(path)[1].lower()
        content_type = "text/plain; charset=utf-8" if ext in _TEXT_TYPES else \
            _TYPES.get(ext, "application/octet-stream")
        try:
            f = open(path, "rb")
        except OSError:
            self._send(HTTPStatus.FORBIDDEN, "text/plain; charset=utf-8", b"cannot read this file", send_body)
            return
        with f:
            self.send_response(HTTPStatus.OK)
            self._headers(content_type, os.fstat(f.fileno()).st_size)
            if send_body:
                shutil.copyfileobj(f, self.wfile)

    def _headers(self, content_type: str, length: int) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()


def host_allowed(host_header: str, allowed: set[str]) -> bool:
    """Whether a Host header names this server as a browser may: an IP address (a page
    cannot rebind a literal address), localhost, or a name the user allowed."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host.rstrip(".") in allowed


def find_runs(store: str) -> list[tuple[str, str]]:
    """(test name, run dir) of every run in the store, newest first."""
    runs = []
    for test in sorted(os.listdir(store)):
        test_dir = os.path.join(store, test)
        if test in ("latest", "campaigns") or test.startswith(".") or os.path.islink(test_dir) \
                or not os.path.isdir(test_dir):
            continue
        for stamp in os.listdir(test_dir):
            run_dir = os.path.join(test_dir, stamp)
            if is_run_dir(run_dir) and not os.path.islink(run_dir):
                runs.append((test, run_dir))
    runs.sort(key=lambda r: os.path.basename(r[1]), reverse=True)
    return runs


def _href(store: str, path: str) -> str:
    return "/" + quote(os.path.relpath(path, store))


def index_page(server: StoreServer) -> str:
    store = server.store
    rows = []
    for test, run_dir in find_runs(store):
        s = server.run_summary(run_dir)
        started = run_started(run_dir)
        when = f"{started:%Y-%m-%d %H:%M:%S}" if started else os.path.basename(run_dir)
        report = os.path.join(run_dir, "report.html")
        verdict = s["verdict"] if s["finished"] else "unknown"
        label = verdict.upper() if s["finished"] else "NO RESULTS"
        links = [f'<a href="{_href(store, report)}">report</a>'] if os.path.exists(report) else []
        links.append(f'<a href="{_href(store, run_dir)}/">files</a>')
        rows.append(
            f'<tr data-verdict="{esc(verdict)}"><td>{esc(test)}</td><td>{esc(when)}</td><td>{esc(s["target"])}</td>'
            f'<td>{esc(s["workload"])}</td><td>{esc(s["nemesis"])}</td><td>{esc(s["bugs"])}</td>'
            f'<td><span class="verdict {esc(verdict)}">{esc(label)}</span></td><td>{esc(s["anomalies"])}</td>'
            f'<td>{" ".join(links)}</td></tr>')
    campaigns_dir = os.path.join(store, "campaigns")
    campaigns = sorted(os.listdir(campaigns_dir)) if os.path.isdir(campaigns_dir) else []
    campaign_links = [f'<li><a href="{_href(store, os.path.join(campaigns_dir, c, "campaign.html"))}">{esc(c)}</a></li>'
                      for c in campaigns if os.path.exists(os.path.join(campaigns_dir, c, "campaign.html"))]
    head = "".join(f"<th>{h}</th>" for h in ("test", "started", "target", "workload", "nemesis", "bugs",
                                              "verdict", "anomalies", ""))
    body = (f"<h1>tectonic results</h1><p class=\"muted\">{esc(store)} &middot; {len(rows)} runs &middot; "
            f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}</p>"
            '<p><input type="search" id="q" placeholder="filter: test, target, nemesis, anomaly…" size="40" autofocus> '
            '<select id="v"><option value="">every verdict</option><option>valid</option><option>invalid</option>'
            '<option>unknown</option></select> <span id="shown" class="muted"></span></p>'
            f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            + ("" if rows else "<p>No runs yet: <code>tectonic test</code> stores its runs here.</p>")
            + (f"<h2>Campaigns</h2><ul>{''.join(campaign_links)}</ul>" if campaign_links else "")
            + _FILTER_SCRIPT)
    return page("tectonic results", body)


_FILTER_SCRIPT = """<script>
(function () {
  const q = document.getElementById("q"), v = document.getElementById("v"), shown = document.getElementById("shown");
  const rows = Array.from(document.querySelectorAll("#runs tbody tr"));
  function apply() {
    const words = q.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let n = 0;
    for (const row of rows) {
      const text = row.textContent.toLowerCase();
      const show = (!v.value || row.dataset.verdict === v.value) && words.every((w) => text.includes(w));
      row.style.display = show ? "" : "none";
      if (show) n++;
    }
    shown.textContent = n + " of " + rows.length + " shown";
  }
  q.addEventListener("input", apply); v.addEventListener("change", apply);
  apply();
})();
</script>"""


def directory_page(store: str, directory: str) -> str:
    rel = os.path.relpath(directory, store)
    entries = []
    if directory != store:
        entries.append('<li><a href="../">../</a></li>')
    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        slash = "/" if os.path.isdir(full) else ""
        entries.append(f'<li><a href="{quote(name)}{slash}">{esc(name)}{slash}</a></li>')
    return page(rel, f'<p><a href="/">all runs</a></p><h1>{esc(rel)}</h1><ul>{"".join(entries)}</ul>')


def make_server(store: str, host: str = "127.0.0.1", port: int = 8080, *,
                allowed_hosts: tuple[str, ...] = (), idle_timeout: float = IDLE_TIMEOUT) -> StoreServer:
    """An HTTP server for the store, bound but not yet serving (port 0: any free port)."""
    return StoreServer(store, (host, port), allowed_hosts=allowed_hosts, idle_timeout=idle_timeout)


def serve(store: str, host: str = "127.0.0.1", port: int = 8080, allowed_hosts: tuple[str, ...] = ()) -> None:
    """Serve the store until interrupted."""
    server = make_server(store, host, port, allowed_hosts=allowed_hosts)
    bound_host, bound_port = server.server_address[:2]
    print(f"Serving {server.store} at http://{bound_host}:{bound_port}/ (Ctrl-C to stop)", file=sys.stderr)
    if not (bound_host.startswith("127.") or bound_host in ("::1", "localhost")):
        print(f"warning: listening on {bound_host}: anyone who can reach it can read the store",
              file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
