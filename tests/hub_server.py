"""A stand-in for the Hugging Face Hub's HTTP API on localhost, for tests: the few calls huggingface_hub makes to
create a repo and commit small files (repo creation, pre-upload modes, the commit itself). The real Hub is never
reached. Every request's path and body are kept, so a test can check what arrived and that no token is in it."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self, fail: bool = False):
        self.fail = fail  # answer every call with a server error
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "files": {path: bytes}}
        self.requests: list[tuple[str, str, bytes]] = []  # (method, path, body)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._answer(b"")

            def do_POST(self):
                self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _answer(self, body: bytes):
                hub.requests.append((self.command, self.path, body))
                status, reply = hub.route(self.command, self.path.split("?")[0], body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        if self.fail:
            return 500, {"error": "the test hub is down"}
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(body)
            repo = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            # huggingface_hub 1.x sends "visibility"; older releases sent "private"
            private = payload["visibility"] == "private" if "visibility" in payload else payload.get("private")
            self.repos.setdefault(repo, {"private": private, "files": {}})
            return 200, {"url": f"{self.endpoint}/{repo}", "name": repo}
        if method == "POST" and path == "/api/validate-yaml":  # the model card's front matter
            return 200, {"errors": [], "warnings": []}
        parts = path.strip("/").split("/")
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
            files = json.loads(body).get("files", [])
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
            repo = "/".join(parts[2:4])
            for line in body.splitlines():
                item = json.loads(line)
                if item.get("key") == "file":
                    value = item["value"]
                    self.repos[repo]["files"][value["path"]] = base64.b64decode(value["content"])
            return 200, {"commitUrl": f"{self.endpoint}/{repo}/commit/{'0' * 40}", "commitOid": "0" * 40,
                         "pullRequestUrl": None}
        return 404, {"error": f"the test hub does not serve {method} {path}"}

    def close(self):
        self.server.shutdown()
