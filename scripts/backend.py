#!/usr/bin/env python3
"""A backend for the demo and the tests: answers every request with its own variant name.

    backend.py NAME [PORT [STATUS [DELAY_MS]]]   (PORT 0: any free port; STATUS default 200;
                                                  DELAY_MS: wait before answering, default 0)

Prints "listening PORT" once ready. The response body is JSON: the backend's name, the request
path and the variant header(s) it received; the header `x-served-by` carries the name too.

Control (sent to the backend directly, not counted): `GET /__control?status=503&delay_ms=300`
changes the answer from now on; `GET /__log` returns `[[unix_time, status], ...]` of the
requests served so far (the last 100 000).
"""
import http.client
import json
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


# Accept the big requests of the hostile-input tests (defaults: 100 headers, 64 KiB lines).
http.client._MAXHEADERS = 20_000
http.client._MAXLINE = 1 << 20


def main() -> None:
    name = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    state = {
        "status": int(sys.argv[3]) if len(sys.argv) > 3 else 200,
        "delay": int(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.0,
    }
    served: deque[tuple[float, int]] = deque(maxlen=100_000)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _control(self) -> bool:
            url = urlsplit(self.path)
            if url.path == "/__control":
                for k, v in parse_qs(url.query).items():
                    if k == "status":
                        state["status"] = int(v[0])
                    elif k == "delay_ms":
                        state["delay"] = int(v[0]) / 1000
                body = json.dumps(state).encode()
            elif url.path == "/__log":
                with lock:
                    body = json.dumps(list(served)).encode()
            else:
                return False
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             + f"content-length: {len(body)}\r\n\r\n".encode() + body)
            return True

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            if self._control():
                return
            status, delay = state["status"], state["delay"]
            reason = {200: "OK", 503: "Service Unavailable"}.get(status, "Status")
            if delay:
                time.sleep(delay)
            with lock:
                served.append((time.time(), status))
            body = json.dumps({
                "served_by": name,
                "path": self.path,
                "variant_header": self.headers.get("x-canary-variant"),
                "variant_headers": self.headers.get_all("x-canary-variant") or [],
            }).encode()
            head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\nx-served-by: {name}\r\n\r\n")
            # One write per response, Nagle off: no delayed-ACK stalls on keep-alive.
            self.wfile.write(head.encode() + body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        def handle_one_request(self) -> None:
            """As BaseHTTPRequestHandler's, but with a request line of up to 1 MiB instead of
            64 KiB (the hostile-input tests send a 64 KiB query string)."""
            try:
                self.raw_requestline = self.rfile.readline(http.client._MAXLINE + 1)
                if len(self.raw_requestline) > http.client._MAXLINE:
                    self.requestline = self.request_version = self.command = ""
                    self.send_error(414)
                    return
                if not self.raw_requestline:
                    self.close_connection = True
                    return
                if not self.parse_request():
                    return
                method = getattr(self, "do_" + self.command, None)
                if method is None:
                    self.send_error(501, f"Unsupported method ({self.command!r})")
                    return
                method()
                self.wfile.flush()
            except TimeoutError:
                self.close_connection = True

        def log_message(self, *args) -> None:  # quiet
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
