#!/usr/bin/env python3
"""A gRPC-shaped HTTP/2 (h2c) backend for the tests: every request gets HTTP 200,
`content-type: application/grpc`, one empty message and the trailer `grpc-status: CODE`.

    grpc_backend.py NAME CODE [PORT]     (PORT 0 or absent: any free port)

Prints "listening PORT" once ready. Uses the `h2` package (pure Python, no grpcio).
"""
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events


def serve(conn_sock: socket.socket, name: str, code: str) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    conn_sock.sendall(conn.data_to_send())
    with conn_sock:
        while True:
            data = conn_sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    sid = event.stream_id
                    conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                                            ("x-served-by", name)])
                    conn.send_data(sid, b"\x00\x00\x00\x00\x00")  # one empty message
                    conn.send_headers(sid, [("grpc-status", code), ("grpc-message", "test")],
                                      end_stream=True)
            out = conn.data_to_send()
            if out:
                conn_sock.sendall(out)


def main() -> None:
    name, code = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    listener = socket.create_server(("127.0.0.1", port))
    print(f"listening {listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock, name, code), daemon=True).start()


if __name__ == "__main__":
    main()
