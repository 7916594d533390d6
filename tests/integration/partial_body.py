#!/usr/bin/env python3
"""Requests whose body is still arriving when the gateway gets SIGTERM.
Each client sends the request line, the headers and the first 10 bytes of
BODY_FILE, then (once every client is that far) the script sends SIGTERM to
PID, and each client sends the rest of its body DELAY ms later and reads the
answer. One JSON line per client: {"delay_ms", "status", "code"} where
status is the HTTP status (0 when the connection closed without an answer)
and code the JSON error code, if any.
Usage: partial_body.py PORT KEY PID BODY_FILE DELAY_MS[,DELAY_MS...]"""
import json
import os
import signal
import socket
import sys
import threading
import time

port, key, pid, body_file = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
delays = [int(d) for d in sys.argv[5].split(",")]
body = open(body_file, "rb").read()
head = ("POST /v1/wake HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (key, len(body))).encode()
ready = threading.Barrier(len(delays) + 1)
signalled = threading.Event()
results = [None] * len(delays)


def read_answer(sock):
    data = b""
    sock.settimeout(30)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    if not data.startswith(b"HTTP/1."):
        return 0, None
    status = int(data.split(b" ", 2)[1])
    code = None
    _, _, payload = data.partition(b"\r\n\r\n")
    try:
        code = json.loads(payload).get("error", {}).get("code")
    except (ValueError, AttributeError):
        pass
    return status, code


def client(i, delay_ms):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head + body[:10])
    ready.wait()
    signalled.wait()
    time.sleep(delay_ms / 1000.0)
    try:
        sock.sendall(body[10:])
    except OSError:
        pass
    results[i] = {"delay_ms": delay_ms, **dict(zip(("status", "code"), read_answer(sock)))}
    sock.close()


threads = [threading.Thread(target=client, args=(i, d)) for i, d in enumerate(delays)]
for t in threads:
    t.start()
ready.wait()
time.sleep(0.2)  # let the gateway read what was sent
os.kill(pid, signal.SIGTERM)
signalled.set()
for t in threads:
    t.join()
for r in results:
    print(json.dumps(r))
