#!/usr/bin/env python3
"""A burst of mutated SIP messages at every listener of pushgw's SIP edge
(tests/integration/test_sip.sh t_mutated_burst).

Valid REGISTER, INVITE, CANCEL, ACK, BYE and OPTIONS messages are mutated
(byte flips, truncation, a huge header, thousands of headers, bad
Content-Length, NUL bytes, an oversized body, invalid UTF-8, a missing
mandatory header, Via and Route loops, Max-Forwards 0) and sent over UDP,
TCP and TLS, from the phones' side (--phone-ip) and from an address the
edge takes as the backend's (--backend-ip). Requests from the backend's
side carry the marker "be-burst" (Call-ID, From tag, X-Burst) so the PBX's
log shows whether any reached it. Bounded: --count messages, --seconds.
Prints one JSON summary line (sent, answered by status, errors).
"""
import argparse
import json
import random
import socket
import ssl
import time

MUTATIONS = [
    "flip", "flip", "flip", "truncate", "huge_header", "many_headers", "bad_length",
    "nul", "big_body", "bad_utf8", "drop_header", "via_loop", "route_loop",
    "route_back", "max_forwards_0", "none",
]


def base_messages(a, side, n):
    """Valid messages; side is 'phone' or 'be' (the backend's)."""
    tag = "be-burst" if side == "be" else "ph-burst"
    ip = a.backend_ip if side == "be" else a.phone_ip
    host = a.host
    cid = f"{tag}-{n}-{random.getrandbits(32):x}"
    branch = f"z9hG4bK{tag}{n}x{random.getrandbits(32):x}"
    via = f"Via: SIP/2.0/UDP {ip}:5999;branch={branch};rport"
    ext = a.ext
    binding = a.binding
    common_from = f"From: \"Bürst Caller\" <sip:+1555000{n % 1000:04d}@{ip}>;tag={tag}tag{n}"
    xb = f"X-Burst: {tag}"
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\n")
    ruri_binding = f"sip:{binding}@{host}:{a.udp}"
    msgs = {
        "REGISTER": (f"REGISTER sip:{host} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n"
                     f"From: <sip:{ext}@{host}>;tag={tag}tag{n}\r\nTo: <sip:{ext}@{host}>\r\n"
                     f"Call-ID: {cid}\r\nCSeq: 1 REGISTER\r\n"
                     f"Contact: <sip:{ext}@{ip}:5999;pn-provider=apns;pn-param=TEAM123456.com.example.phone.voip;"
                     f"pn-prid={'%064x' % (900 + n % 7)}>;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-{n:012d}>\";reg-id=1\r\n"
                     f"Expires: 3600\r\n{xb}\r\nContent-Length: 0\r\n\r\n"),
        "INVITE": (f"INVITE {ruri_binding} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{common_from}\r\n"
                   f"To: <sip:{ext}@{host}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n"
                   f"Contact: <sip:caller@{ip}:5999>\r\n{xb}\r\nContent-Type: application/sdp\r\n"
                   f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"),
        "CANCEL": (f"CANCEL {ruri_binding} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{common_from}\r\n"
                   f"To: <sip:{ext}@{host}>\r\nCall-ID: {cid}\r\nCSeq: 1 CANCEL\r\n"
                   f"Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n{xb}\r\nContent-Length: 0\r\n\r\n"),
        "ACK": (f"ACK sip:{ext}@{ip}:5999 SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n"
                f"Route: <sip:{binding}@{host}:{a.udp};transport=udp;lr>\r\n{common_from}\r\n"
                f"To: <sip:{ext}@{host}>;tag=x{n}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\n{xb}\r\nContent-Length: 0\r\n\r\n"),
        "BYE": (f"BYE sip:{ext}@{ip}:5999 SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n"
                f"Route: <sip:{binding}@{host}:{a.udp};transport=udp;lr>\r\n{common_from}\r\n"
                f"To: <sip:{ext}@{host}>;tag=x{n}\r\nCall-ID: {cid}\r\nCSeq: 2 BYE\r\n{xb}\r\nContent-Length: 0\r\n\r\n"),
        "OPTIONS": (f"OPTIONS sip:{host}:{a.udp} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{common_from}\r\n"
                    f"To: <sip:{host}>\r\nCall-ID: {cid}\r\nCSeq: 1 OPTIONS\r\n{xb}\r\nAccept: application/sdp\r\n"
                    f"Content-Length: 0\r\n\r\n"),
    }
    return msgs


def mutate(a, data, how, rnd):
    b = bytearray(data)
    head_end = data.find(b"\r\n\r\n")
    if how == "flip":
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(b))
            b[i] = rnd.randrange(256)
    elif how == "truncate":
        b = b[: rnd.randrange(1, len(b))]
    elif how == "huge_header":
        b[head_end:head_end] = b"\r\nSubject: " + b"A" * rnd.choice([8000, 30000, 64000, 70000])
    elif how == "many_headers":
        n = rnd.choice([300, 1000, 3000])
        b[head_end:head_end] = b"".join(b"\r\nX-H%d: v" % i for i in range(n))
    elif how == "bad_length":
        val = rnd.choice([b"999999", b"-1", b"abc", b"5", b"18446744073709551616", b""])
        s = bytes(b)
        i = s.find(b"Content-Length: ")
        if i >= 0:
            j = s.find(b"\r\n", i)
            b[i + 16: j] = val
    elif how == "nul":
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = 0
    elif how == "big_body":
        body = b"x" * rnd.choice([20000, 66000, 200000])
        s = bytes(b[:head_end])
        i = s.find(b"Content-Length: ")
        j = s.find(b"\r\n", i)
        s = s[: i + 16] + str(len(body)).encode() + s[j:]
        b = bytearray(s + b"\r\n\r\n" + body)
    elif how == "bad_utf8":
        s = bytes(b)
        b = bytearray(s.replace(b"B\xc3\xbcrst", b"B\xff\xfe\xc0\xafrst").replace(
            b"tag=", b"tag=\xed\xa0\x80", 1))
    elif how == "drop_header":
        name = rnd.choice([b"Via", b"From", b"To", b"Call-ID", b"CSeq", b"Contact", b"Max-Forwards"])
        lines = bytes(b[:head_end]).split(b"\r\n")
        lines = [ln for ln in lines if not ln.startswith(name + b":")]
        b = bytearray(b"\r\n".join(lines) + bytes(b[head_end:]))
    elif how == "via_loop":
        vias = b"".join(b"Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKloop%d\r\n" % (a.host.encode(), a.udp, i)
                        for i in range(rnd.choice([20, 40, 100])))
        i = bytes(b).find(b"\r\n") + 2
        b[i:i] = vias
    elif how == "route_loop":
        routes = b"".join(b"Route: <sip:%s:%d;lr>\r\n" % (a.host.encode(), a.udp) for _ in range(rnd.choice([5, 40])))
        i = bytes(b).find(b"\r\n") + 2
        b[i:i] = routes
    elif how == "route_back":
        # a route through a binding id pushgw does not know, then on to the
        # PBX: from the backend's side this would loop back to it
        routes = (b"Route: <sip:pgw-000000000000000000000000@%s:%d;lr>\r\nRoute: <sip:%s:%d;lr>\r\n"
                  % (a.host.encode(), a.udp, a.host.encode(), a.pbx))
        i = bytes(b).find(b"\r\n") + 2
        b[i:i] = routes
    elif how == "max_forwards_0":
        b = bytearray(bytes(b).replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    return bytes(b)


class Sender:
    def __init__(self, a, transport, src_ip):
        self.a, self.transport, self.src_ip = a, transport, src_ip
        self.sock = None
        self.sent = 0
        self.errors = 0
        self.statuses = {}
        self.buf = b""

    def port(self):
        return {"udp": self.a.udp, "tcp": self.a.tcp, "tls": self.a.tls}[self.transport]

    def connect(self):
        if self.transport == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((self.src_ip, 0))
            s.setblocking(False)
            self.sock = s
            return
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.bind((self.src_ip, 0))
        raw.settimeout(2)
        raw.connect((self.a.host, self.port()))
        if self.transport == "tls":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the test's own certificate; not what is tested
            raw = ctx.wrap_socket(raw, server_hostname=self.a.host)
        raw.setblocking(False)
        self.sock = raw

    def send(self, data):
        for attempt in range(2):
            try:
                if self.sock is None:
                    self.connect()
                if self.transport == "udp":
                    self.sock.sendto(data, (self.a.host, self.port()))
                else:
                    self.sock.setblocking(True)
                    self.sock.settimeout(2)
                    self.sock.sendall(data)
                    self.sock.setblocking(False)
                self.sent += 1
                return
            except (OSError, ssl.SSLError):
                # too large for a datagram, or the edge closed the connection
                # after a message it could not frame: a new one
                self.errors += 1
                self.close()
                if self.transport == "udp" and len(data) > 65000:
                    return

    def drain(self):
        if self.sock is None:
            return
        while True:
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, ssl.SSLWantReadError, socket.timeout):
                return
            except (OSError, ssl.SSLError):
                self.close()
                return
            if not data and self.transport != "udp":
                self.close()
                return
            self.buf += data
            for line in self.buf.split(b"\r\n"):
                if line.startswith(b"SIP/2.0 ") and len(line) >= 11:
                    st = line[8:11].decode(errors="replace")
                    self.statuses[st] = self.statuses.get(st, 0) + 1
            self.buf = self.buf[-200:] if self.transport != "udp" else b""
            if self.transport != "udp":
                self.buf = b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--udp", type=int, required=True)
    ap.add_argument("--tcp", type=int, required=True)
    ap.add_argument("--tls", type=int, required=True)
    ap.add_argument("--pbx", type=int, required=True, help="the PBX's port (route_back)")
    ap.add_argument("--phone-ip", default="127.0.0.1")
    ap.add_argument("--backend-ip", default="127.0.0.2")
    ap.add_argument("--ext", default="1020")
    ap.add_argument("--binding", required=True)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    random.seed(a.seed)
    senders = [Sender(a, t, ip) for t in ("udp", "tcp", "tls") for ip in (a.phone_ip, a.backend_ip)]
    deadline = time.time() + a.seconds
    by_mutation = {}
    n = 0
    while n < a.count and time.time() < deadline:
        s = senders[n % len(senders)]
        side = "be" if s.src_ip == a.backend_ip else "phone"
        method = rnd.choice(["REGISTER", "INVITE", "CANCEL", "ACK", "BYE", "OPTIONS"])
        how = rnd.choice(MUTATIONS)
        data = mutate(a, base_messages(a, side, n)[method].encode(), how, rnd)
        s.send(data)
        by_mutation[how] = by_mutation.get(how, 0) + 1
        n += 1
        if n % 20 == 0:
            for x in senders:
                x.drain()
            time.sleep(0.002)
    time.sleep(0.5)
    statuses = {}
    for x in senders:
        x.drain()
        for k, v in x.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
        x.close()
    print(json.dumps({"sent": sum(x.sent for x in senders), "messages": n,
                      "send_errors": sum(x.errors for x in senders),
                      "statuses": statuses, "mutations": by_mutation}))


if __name__ == "__main__":
    main()
