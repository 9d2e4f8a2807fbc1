"""A test double of the Ollama server: the documented HTTP endpoints hibachi-lab uses, on loopback.

No Ollama server can run on the CI machine, so this speaks Ollama's wire protocol (docs/api.md):
``POST /api/chat``, ``POST /api/create``, ``HEAD``/``POST /api/blobs/:digest``, ``GET /api/tags``,
``POST /api/show``. ``/api/chat`` answers from a prompt -> answer table the test provides: a string,
or a message dict with ``content`` and ``tool_calls`` (Ollama's wire form:
``[{"function": {"name": ..., "arguments": {...}}}]``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class OllamaDouble:
    def __init__(self, answer: Callable[[str, list[dict]], str | dict]):
        self.answer = answer
        self.blobs: dict[str, bytes] = {}
        self.models: dict[str, dict] = {}
        self.chats: list[dict] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                return None

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_HEAD(self):
                digest = self.path.removeprefix("/api/blobs/")
                self.send_response(200 if digest in double.blobs else 404)
                self.end_headers()

            def do_GET(self):
                if self.path == "/api/tags":
                    self._json(200, {"models": [{"name": name, "model": name, "size": 1, "digest": "sha256:0"}
                                                for name in double.models]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self):
                body = self._body()
                if self.path.startswith("/api/blobs/"):
                    digest = self.path.removeprefix("/api/blobs/")
                    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                        self._json(400, {"error": "digest mismatch"})
                        return
                    double.blobs[digest] = body
                    self.send_response(201)
                    self.end_headers()
                    return
                request = json.loads(body or b"{}")
                if self.path == "/api/create":
                    missing = [d for d in (request.get("files") or {}).values() if d not in double.blobs]
                    if missing:
                        self._json(400, {"error": f"blob {missing[0]} not found"})
                        return
                    double.models[request["model"]] = request
                    self._json(200, {"status": "success"})
                elif self.path == "/api/show":
                    model = double.models.get(request.get("model"))
                    if model is None:
                        self._json(404, {"error": "model not found"})
                    else:
                        self._json(200, {"template": model.get("template", ""), "system": model.get("system", ""),
                                         "parameters": json.dumps(model.get("parameters", {})), "details": {}})
                elif self.path == "/api/chat":
                    if request.get("model") not in double.models:
                        self._json(404, {"error": f"model '{request.get('model')}' not found"})
                        return
                    double.chats.append(request)
                    reply = double.answer(request["model"], request["messages"])
                    message = {"role": "assistant", **(reply if isinstance(reply, dict) else {"content": reply})}
                    self._json(200, {"model": request["model"], "created_at": "2026-11-24T00:00:00Z",
                                     "message": message, "done": True,
                                     "done_reason": "stop"})
                else:
                    self._json(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
