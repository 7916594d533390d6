#!/usr/bin/env python3
"""An emulated softphone for the SIP-edge test (tests/integration/test_sip.sh).

It registers through pushgw from one socket (UDP, or one TCP connection,
the phone's flow), answering the PBX's digest challenge, and then, by mode:
  register    closes the socket (the app goes to sleep)
  answer      takes the INVITE on that same socket: 180, 200, ACK, BYE
  ring        takes the INVITE, rings (180) until it is cancelled
  unregister  sends Expires: 0
  keepalive   sends a double-CRLF keep-alive, expects a CRLF back (TCP)
  call        calls --target through pushgw: INVITE, ACK, BYE
Real phones register from the socket they are called on, which SIPp cannot
do across a REGISTER and a later INVITE with another Call-ID; hence this.
Prints one JSON object per event on stdout; exit 0 when the mode completed.
"""
import argparse
import hashlib
import json
import random
import re
import socket
import ssl
import sys
import time


def log(event, **kv):
    kv["event"] = event
    kv["t"] = time.time()
    print(json.dumps(kv), flush=True)


class Flow:
    def __init__(self, transport, host, port):
        self.transport = transport
        self.peer = (host, port)
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        elif transport == "tls":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the test's own CA; the flow is what is tested
            raw = socket.create_connection(self.peer, timeout=5)
            self.sock = ctx.wrap_socket(raw, server_hostname=host)
        else:
            self.sock = socket.create_connection(self.peer, timeout=5)
        self.local = self.sock.getsockname()
        self.buf = b""

    def send(self, text):
        data = text.encode()
        if self.transport == "udp":
            self.sock.sendto(data, self.peer)
        else:
            self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_raw(self, n, timeout):
        self.sock.settimeout(timeout)
        return self.sock.recv(n)

    def recv(self, timeout):
        """One SIP message (text), or None at the deadline."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            if self.transport == "udp":
                try:
                    data, _ = self.sock.recvfrom(65535)
                except socket.timeout:
                    return None
                text = data.decode(errors="replace")
                if text.strip():
                    return text
                continue
            msg = self._take()
            if msg is not None:
                return msg
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                return None
            if not data:
                return None
            self.buf += data

    def _take(self):
        while self.buf.startswith(b"\r\n"):
            self.buf = self.buf[2:]
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode(errors="replace")
        m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        if len(self.buf) < end + 4 + n:
            return None
        msg = self.buf[: end + 4 + n].decode(errors="replace")
        self.buf = self.buf[end + 4 + n:]
        return msg

    def close(self):
        self.sock.close()


def headers(msg, name):
    return re.findall(r"(?im)^" + re.escape(name) + r"\s*:\s*(.*?)\r?$", msg)


def header(msg, name):
    h = headers(msg, name)
    return h[0] if h else ""


def status_of(msg):
    m = re.match(r"SIP/2.0 (\d+)", msg)
    return int(m.group(1)) if m else 0


def method_of(msg):
    m = re.match(r"([A-Z]+) ", msg)
    return m.group(1) if m else ""


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def digest(challenge, user, password, method, uri):
    p = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    ha1 = md5(f"{user}:{p['realm']}:{password}")
    ha2 = md5(f"{method}:{uri}")
    out = f'Digest username="{user}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}"'
    if "qop" in p:
        cnonce = "%08x" % random.getrandbits(32)
        resp = md5(f"{ha1}:{p['nonce']}:00000001:{cnonce}:auth:{ha2}")
        out += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    else:
        resp = md5(f"{ha1}:{p['nonce']}:{ha2}")
    out += f', response="{resp}", algorithm=MD5'
    if "opaque" in p:
        out += f', opaque="{p["opaque"]}"'
    return out


class Phone:
    def __init__(self, a):
        self.a = a
        self.flow = Flow(a.transport, a.host, a.port)
        self.tag = "%x" % random.getrandbits(48)
        self.call_id = "%x@phone" % random.getrandbits(64)
        self.cseq = 0

    def contact(self):
        lh, lp = self.flow.local
        pn = (";" + self.a.pn) if self.a.pn else ""
        c = f"<sip:{self.a.user}@{lh}:{lp};transport={self.a.transport}{pn}>"
        if self.a.instance:
            c += f';+sip.instance="<urn:uuid:{self.a.instance}>";reg-id=1'
        return c

    def register(self, expires, auth=None):
        self.cseq += 1
        lh, lp = self.flow.local
        uri = f"sip:{self.a.domain}"
        t = self.a.transport.upper()
        msg = (f"REGISTER {uri} SIP/2.0\r\n"
               f"Via: SIP/2.0/{t} {lh}:{lp};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
               f"Max-Forwards: 70\r\n"
               f"From: <sip:{self.a.user}@{self.a.domain}>;tag={self.tag}\r\n"
               f"To: <sip:{self.a.user}@{self.a.domain}>\r\n"
               f"Call-ID: {self.call_id}\r\n"
               f"CSeq: {self.cseq} REGISTER\r\n"
               f"Contact: {self.contact()}\r\n"
               f"Expires: {expires}\r\n")
        if auth:
            msg += f"Authorization: {auth}\r\n"
        msg += "User-Agent: pushgw-test-phone\r\nContent-Length: 0\r\n\r\n"
        self.flow.send(msg)
        return self.wait_response("REGISTER")

    def wait_response(self, method, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.flow.recv(deadline - time.time())
            if m is None:
                return None
            if status_of(m) >= 200 and method in header(m, "CSeq"):
                return m
        return None

    def register_with_auth(self, expires):
        r = self.register(expires)
        if r is not None and status_of(r) == 401:
            log("challenged", status=401)
            ch = header(r, "WWW-Authenticate")
            r = self.register(expires, digest(ch, self.a.user, self.a.password, "REGISTER",
                                              f"sip:{self.a.domain}"))
        st = status_of(r) if r else 0
        log("registered" if 200 <= st < 300 else "register_failed", status=st,
            contact=headers(r, "Contact") if r else [], local_port=self.flow.local[1])
        return 200 <= st < 300

    def reply(self, req, status, phrase, to_tag=None, body="", rr=True):
        lh, lp = self.flow.local
        out = [f"SIP/2.0 {status} {phrase}"]
        out += [f"Via: {v}" for v in headers(req, "Via")]
        if rr:
            out += [f"Record-Route: {v}" for v in headers(req, "Record-Route")]
        out.append(f"From: {header(req, 'From')}")
        to = header(req, "To")
        if to_tag and ";tag=" not in to:
            to += f";tag={to_tag}"
        out.append(f"To: {to}")
        out.append(f"Call-ID: {header(req, 'Call-ID')}")
        out.append(f"CSeq: {header(req, 'CSeq')}")
        out.append(f"Contact: <sip:{self.a.user}@{lh}:{lp};transport={self.a.transport}>")
        if body:
            out.append("Content-Type: application/sdp")
        out.append(f"Content-Length: {len(body)}")
        self.flow.send("\r\n".join(out) + "\r\n\r\n" + body)

    def wait_request(self, methods, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.flow.recv(deadline - time.time())
            if m is None:
                return None
            if method_of(m) in methods:
                return m
        return None

    def take_invite(self):
        inv = self.wait_request(("INVITE",), self.a.wait)
        if inv is None:
            log("no_invite")
            return None
        log("invite", ruri=inv.split(" ")[1], call_id=header(inv, "Call-ID"),
            record_route=headers(inv, "Record-Route"), from_=header(inv, "From"))
        return inv

    def answer(self):
        inv = self.take_invite()
        if inv is None:
            return False
        tag = "%x" % random.getrandbits(40)
        self.reply(inv, 180, "Ringing", tag)
        time.sleep(0.1)
        lh = self.flow.local[0]
        sdp = (f"v=0\r\no=phone 1 1 IN IP4 {lh}\r\ns=-\r\nc=IN IP4 {lh}\r\nt=0 0\r\n"
               f"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        self.reply(inv, 200, "OK", tag, sdp)
        ack = self.wait_request(("ACK",), 5)
        log("ack" if ack else "no_ack")
        bye = self.wait_request(("BYE",), 10)
        if bye is None:
            log("no_bye")
            return False
        self.reply(bye, 200, "OK", rr=False)
        log("bye")
        return ack is not None

    def ring(self):
        inv = self.take_invite()
        if inv is None:
            return False
        tag = "%x" % random.getrandbits(40)
        self.reply(inv, 180, "Ringing", tag)
        cancel = self.wait_request(("CANCEL",), self.a.wait)
        if cancel is None:
            log("no_cancel")
            return False
        self.reply(cancel, 200, "OK", rr=False)
        self.reply(inv, 487, "Request Terminated", tag)
        log("cancelled", reason=header(cancel, "Reason"))
        self.wait_request(("ACK",), 2)
        return True

    def request(self, method, ruri, to, cseq, routes, body="", branch=None):
        lh, lp = self.flow.local
        t = self.a.transport.upper()
        out = [f"{method} {ruri} SIP/2.0",
               f"Via: SIP/2.0/{t} {lh}:{lp};branch={branch or 'z9hG4bK%x' % random.getrandbits(48)};rport",
               "Max-Forwards: 70"]
        out += [f"Route: {r}" for r in routes]
        out += [f"From: <sip:{self.a.user}@{self.a.domain}>;tag={self.tag}", f"To: {to}",
                f"Call-ID: {self.call_id}-call", f"CSeq: {cseq} {method}",
                f"Contact: <sip:{self.a.user}@{lh}:{lp};transport={self.a.transport}>"]
        if body:
            out.append("Content-Type: application/sdp")
        out.append(f"Content-Length: {len(body)}")
        self.flow.send("\r\n".join(out) + "\r\n\r\n" + body)

    def call(self):
        """An outgoing call through pushgw: INVITE, 200, ACK, BYE, 200."""
        lh = self.flow.local[0]
        sdp = (f"v=0\r\no=caller 1 1 IN IP4 {lh}\r\ns=-\r\nc=IN IP4 {lh}\r\nt=0 0\r\n"
               f"m=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        ruri = f"sip:{self.a.target}@{self.a.domain}"
        self.request("INVITE", ruri, f"<{ruri}>", 1, [], sdp)
        ok = self.wait_response("INVITE", self.a.wait)
        st = status_of(ok) if ok else 0
        log("call_answered" if 200 <= st < 300 else "call_failed", status=st)
        if not (200 <= st < 300):
            return False
        rr = []
        for h in headers(ok, "Record-Route"):
            rr += [x.strip() for x in h.split(",")]
        routes = list(reversed(rr))
        m = re.search(r"<([^>]+)>", header(ok, "Contact"))
        target = m.group(1) if m else ruri
        to = header(ok, "To")
        self.request("ACK", target, to, 1, routes)
        time.sleep(0.2)
        self.request("BYE", target, to, 2, routes)
        bye_ok = self.wait_response("BYE", 5)
        log("bye_answered" if bye_ok and status_of(bye_ok) == 200 else "bye_failed",
            status=status_of(bye_ok) if bye_ok else 0, routes=routes)
        return bye_ok is not None and status_of(bye_ok) == 200

    def keepalive(self):
        self.flow.send_raw(b"\r\n\r\n")
        try:
            got = self.flow.recv_raw(16, 3)
        except socket.timeout:
            got = b""
        log("pong" if got.startswith(b"\r\n") else "no_pong", got=got.decode(errors="replace"))
        return got.startswith(b"\r\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", default="udp", choices=["udp", "tcp", "tls"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--domain", default="127.0.0.1")
    ap.add_argument("--user", default="1001")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--pn", default="")
    ap.add_argument("--instance", default="")
    ap.add_argument("--expires", type=int, default=3600)
    ap.add_argument("--mode", default="register",
                    choices=["register", "answer", "ring", "unregister", "keepalive", "call"])
    ap.add_argument("--target", default="", help="extension to call (mode call)")
    ap.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the INVITE")
    a = ap.parse_args()
    p = Phone(a)
    ok = p.register_with_auth(0 if a.mode == "unregister" else a.expires)
    if ok and a.mode == "answer":
        ok = p.answer()
    elif ok and a.mode == "ring":
        ok = p.ring()
    elif ok and a.mode == "call":
        ok = p.call()
    elif ok and a.mode == "keepalive":
        ok = p.keepalive()
    p.flow.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
