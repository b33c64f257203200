"""A stand-in for the Hugging Face Hub on 127.0.0.1, for tests of the download paths.

No machine running the tests reaches the real Hub, yet "that model does not exist", "that is
not a text model" and "too large, refused before downloading" are decided by what the Hub
answers. This server answers like it for the few routes `huggingface_hub` uses to fetch files
(``/{repo}/resolve/{revision}/{file}`` and ``/api/models/...``), from an in-memory dict, and
records every path asked for so a test can check that no weights were requested.

    with serve_fake_hub({"acme/tiny": {"config.json": b"{...}"}}) as hub:
        hub.activate(monkeypatch, tmp_path)   # point huggingface_hub at it, online
        ...
        assert not hub.requested_weights()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def requested_weights(self) -> list[str]:
        return [path for path in self.requests if path.endswith(WEIGHT_SUFFIXES)]

    def activate(self, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
        """Point huggingface_hub (and core's reachability probe) at this server, online.

        huggingface_hub reads its endpoint and offline flag once, at import, so the constants
        are patched as well as the environment; downloads go to `cache_dir`, never the user's
        cache.
        """
        from huggingface_hub import constants

        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
        monkeypatch.setenv("HF_ENDPOINT", self.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", self.url)
        monkeypatch.setattr(
            constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            self.url + "/{repo_id}/resolve/{revision}/{filename}",
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                with hub._lock:
                    hub.requests.append(path)
                parts = [p for p in path.split("/") if p]
                if parts[:2] == ["api", "models"]:
                    self._api(parts[2:], body)
                elif "resolve" in parts:
                    at = parts.index("resolve")
                    repo, filename = "/".join(parts[:at]), "/".join(parts[at + 2 :])
                    self._file(repo, filename, body)
                else:
                    self._error(404, "EntryNotFound", body)

            def _api(self, parts: list[str], body: bool) -> None:
                # /api/models/{owner}/{name}[/revision|tree/{rev}[/path]]
                for split in (2, 1):
                    repo = "/".join(parts[:split])
                    if repo in hub.repos:
                        rest = parts[split:]
                        break
                else:
                    self._error(404, "RepoNotFound", body)
                    return
                files = hub.repos[repo]
                if rest[:1] == ["tree"]:
                    prefix = "/".join(rest[2:])
                    listing = [
                        {"type": "file", "path": f, "size": len(data), "oid": _sha(data)}
                        for f, data in files.items()
                        if f.startswith(prefix)
                    ]
                    self._json(listing, body)
                else:
                    siblings = [{"rfilename": f} for f in files]
                    self._json({"id": repo, "sha": COMMIT, "siblings": siblings}, body)

            def _file(self, repo: str, filename: str, body: bool) -> None:
                if repo not in hub.repos:
                    self._error(404, "RepoNotFound", body)
                    return
                data = hub.repos[repo].get(filename)
                if data is None:
                    self._error(404, "EntryNotFound", body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{_sha(data)}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _json(self, value: object, body: bool) -> None:
                data = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _error(self, status: int, code: str, body: bool) -> None:
                data = json.dumps({"error": code}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@contextlib.contextmanager
def serve_fake_hub(repos: dict[str, dict[str, bytes]]) -> Iterator[FakeHub]:
    """Run a `FakeHub` on a free port of 127.0.0.1 for the duration of the block."""
    hub = FakeHub(repos)
    thread = threading.Thread(target=hub.server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield hub
    finally:
        hub.server.shutdown()
        hub.server.server_close()
        thread.join(timeout=5)
