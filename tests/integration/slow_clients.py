#!/usr/bin/env python3
"""Slow clients for the tests: opens N connections to a gateway, sends each
the headers of a POST /v1/wake announcing a BODY_BYTES body, then dribbles
that body one byte per second on every connection, until the server closes
them or MAX_S seconds pass.  Prints one JSON line when all are connected
({"connected": N}), one per connection the server closes
({"gone": i, "after_s": s, "answer": first bytes}), and a final summary
({"opened", "closed", "still_open", "bytes_sent"}).
Usage: slow_clients.py PORT API_KEY N BODY_BYTES MAX_S"""
import json
import select
import socket
import sys
import time

port, key, count, body_bytes, max_s = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
head = ("POST /v1/wake HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (key, body_bytes)).encode()


def say(doc):
    print(json.dumps(doc), flush=True)


t0 = time.time()
socks = {}
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head)
    s.setblocking(False)
    socks[i] = s
say({"connected": len(socks)})

opened, closed, sent = len(socks), 0, 0


def close(i, answer):
    global closed
    socks.pop(i).close()
    closed += 1
    say({"gone": i, "after_s": round(time.time() - t0, 2), "answer": answer[:40].decode("latin-1")})


while socks and time.time() - t0 < max_s:
    tick = time.time() + 1
    for i, s in list(socks.items()):
        try:
            s.send(b" ")
            sent += 1
        except OSError:
            close(i, b"")
    while socks and time.time() < tick:
        ready, _, _ = select.select(list(socks.values()), [], [], max(0.0, tick - time.time()))
        for s in ready:
            i = next(k for k, v in socks.items() if v is s)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            close(i, data)
say({"opened": opened, "closed": closed, "still_open": len(socks), "bytes_sent": sent})
