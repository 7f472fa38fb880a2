"""A small OpenAI-compatible test server on 127.0.0.1 that misbehaves on purpose.

Each request is tagged by the `row-N` found in its text; a plan maps (row number, attempt)
to what the server does, so a test knows exactly which calls to expect. Every request is
recorded with its arrival time, which is how tests count calls and check pauses. With an
`upstream` it forwards to a real server instead, recording only.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROW = re.compile(r"row-(\d+)")
# (row, attempt from 1) -> ok | 429 | 500 | 400 | hang | malformed | no-choices | drop
Plan = Callable[[int, int], str]


@dataclass(frozen=True)
class Call:
    at: float  # time.monotonic() on arrival
    row: int | None
    attempt: int
    action: str


class FakeEndpoint:
    def __init__(
        self,
        plan: Plan | None = None,
        upstream: str | None = None,
        api_key: str | None = None,
        retry_after_s: int = 3,
        hang_s: float = 3.0,
    ) -> None:
        self.plan = plan or (lambda row, attempt: "ok")
        self.upstream = upstream
        self.api_key = api_key
        self.retry_after_s = retry_after_s
        self.hang_s = hang_s
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"endpoint": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def record(self, body: dict) -> Call:
        text = json.dumps(body.get("messages") or body.get("prompt") or "")
        match = ROW.search(text)
        row = int(match.group(1)) if match else None
        with self._lock:
            attempt = 1 + sum(1 for c in self.calls if c.row == row)
            action = self.plan(row, attempt) if row is not None else "ok"
            call = Call(time.monotonic(), row, attempt, action)
            self.calls.append(call)
        return call

    def calls_of(self, row: int) -> list[Call]:
        return [c for c in self.calls if c.row == row]

    def __enter__(self) -> FakeEndpoint:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def completion(row: int | None, body: dict) -> dict:
    content = f"answer for row-{row}"
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    if "messages" in body:
        choice = {"index": 0, "finish_reason": "stop"}
        choice["message"] = {"role": "assistant", "content": content}
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [choice], "usage": usage}  # fmt: skip
    choice = {"index": 0, "finish_reason": "stop", "text": content}
    return {"id": "x", "object": "text_completion", "created": 0, "model": body["model"],
            "choices": [choice], "usage": usage}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    endpoint: FakeEndpoint  # set by the subclass FakeEndpoint makes

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw)
        expected = f"Bearer {self.endpoint.api_key}"
        if self.endpoint.api_key and self.headers.get("Authorization") != expected:
            # Like some real APIs, the error body quotes the key it received.
            got = self.headers.get("Authorization", "")
            return self._send(401, {"error": {"message": f"invalid key {got}"}})
        call = self.endpoint.record(body)
        if self.endpoint.upstream:
            return self._forward(raw)
        getattr(self, "_" + call.action.replace("-", "_"))(call, body)

    def _ok(self, call: Call, body: dict) -> None:
        self._send(200, completion(call.row, body))

    def _429(self, call: Call, body: dict) -> None:
        headers = {"Retry-After": str(self.endpoint.retry_after_s)}
        self._send(429, {"error": {"message": "slow down"}}, headers)

    def _500(self, call: Call, body: dict) -> None:
        self._send(500, {"error": {"message": "server error"}})

    def _400(self, call: Call, body: dict) -> None:
        self._send(400, {"error": {"message": "bad request"}})

    def _hang(self, call: Call, body: dict) -> None:
        time.sleep(self.endpoint.hang_s)
        self._send(200, completion(call.row, body))

    def _malformed(self, call: Call, body: dict) -> None:
        self._send_raw(200, b'{"choices": [ {"mess')

    def _no_choices(self, call: Call, body: dict) -> None:
        self._send(200, {"id": "x", "object": "chat.completion"})

    def _drop(self, call: Call, body: dict) -> None:
        self.close_connection = True

    def _forward(self, raw: bytes) -> None:
        request = urllib.request.Request(
            self.endpoint.upstream + self.path.removeprefix("/v1"),
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=300) as response:
            self._send_raw(response.status, response.read())

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)


def chat_rows(n: int, text: str = "Say one word about row-{i}.") -> list[dict]:
    """`n` request rows in the stage's input contract, each tagged row-i."""
    return [
        {"request_id": f"note-{i:03d}", "messages": [{"role": "user", "content": text.format(i=i)}]}
        for i in range(n)
    ]
