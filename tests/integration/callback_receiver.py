#!/usr/bin/env python3
"""A PBX's webhook endpoint for the tests: records every POST (headers and
body, one JSON line each) and answers the statuses given, in order, the last
one repeating.  A status may carry a delay, STATUS@SECONDS: the POST is
recorded at once and answered that much later (a slow receiver).
Usage: callback_receiver.py RECORD_FILE STATUS[@SECONDS][,…]
Prints {"port": N} once listening on 127.0.0.1."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def parse(item):
    status, _, delay = item.partition("@")
    return int(status), float(delay or 0)


record, answers = sys.argv[1], [parse(s) for s in sys.argv[2].split(",")]
seen = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(record, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": body.decode("utf-8", "replace"), "ts": time.time()}) + "\n")
        status, delay = answers[min(seen, len(answers) - 1)]
        seen += 1
        time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
