#!/usr/bin/env python3
"""Load and timing tool for the SIP section of the bench (bench/sip.sh).

  calls    N sleeping phones register through pushgw over TCP and close
           their connection; then, one call at a time, a caller INVITEs
           each at the PBX, the phone registers again on a new connection
           (the emulated app woken by the push), takes the INVITE and answers
           486 (the call's end is not what is measured). Writes one JSON
           line per call: the INVITE's and the re-REGISTER's Call-IDs, for
           `analyze`.
  analyze  reads the loopback capture taken during `calls` and prints, per
           call, INVITE in at pushgw -> push request out (to the simulator)
           and the PBX's 2xx to the re-REGISTER in -> INVITE out to the phone,
           in microseconds, with p50/p99/max.
  scale    registers --udp UDP phones (one socket each, closed afterwards:
           they sleep) and --tcp TCP phones (one connection each, kept open)
           through pushgw, then sends --invites INVITEs to the PBX for UDP
           phones (held by pushgw until they register again, which they never
           do) and keeps everything open until --stop-file exists.

Messages are minimal but complete SIP; no authentication (the bench's
Kamailio has none). Only the standard library.
"""
import argparse
import json
import os
import random
import re
import selectors
import socket
import struct
import sys
import time

PN_PARAM = "TEAM123456.com.example.phone.voip"
HOST = "127.0.0.1"


def token(i, base):
    return "%064x" % (base + i)


def rnd(bits=48):
    return "%x" % random.getrandbits(bits)


def register_msg(ext, transport, lport, call_id, cseq, tok, inst, expires=3600):
    t = transport.upper()
    contact = (f"<sip:{ext}@{HOST}:{lport};transport={transport};pn-provider=apns;"
               f"pn-param={PN_PARAM};pn-prid={tok}>;+sip.instance=\"<urn:uuid:{inst}>\";reg-id=1")
    return (f"REGISTER sip:{HOST} SIP/2.0\r\n"
            f"Via: SIP/2.0/{t} {HOST}:{lport};branch=z9hG4bK{rnd()};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:{ext}@{HOST}>;tag={rnd(32)}\r\n"
            f"To: <sip:{ext}@{HOST}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: {contact}\r\n"
            f"Expires: {expires}\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def invite_msg(ext, lport, call_id, branch):
    sdp = (f"v=0\r\no=caller 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
           f"m=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    return (f"INVITE sip:{ext}@{HOST} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{lport};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: \"Alice\" <sip:+15551234567@{HOST}>;tag={rnd(32)}\r\n"
            f"To: <sip:{ext}@{HOST}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: 1 INVITE\r\n"
            f"Contact: <sip:+15551234567@{HOST}:{lport}>\r\n"
            f"Content-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


def hdr(msg, name):
    m = re.search(r"(?im)^" + re.escape(name) + r"\s*:\s*(.*?)\r?$", msg)
    return m.group(1) if m else ""


def status_of(msg):
    m = re.match(r"SIP/2.0 (\d+)", msg)
    return int(m.group(1)) if m else 0


def take_message(buf):
    """(message text, rest) or (None, buf): one SIP message off a stream."""
    while buf.startswith(b"\r\n"):
        buf = buf[2:]
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, buf
    head = buf[:end].decode(errors="replace")
    m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    if len(buf) < end + 4 + n:
        return None, buf
    return buf[:end + 4 + n].decode(errors="replace"), buf[end + 4 + n:]


# ---- blocking helpers (calls) ----

class TcpPhone:
    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lport = self.sock.getsockname()[1]
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv(self, timeout):
        deadline = time.time() + timeout
        while True:
            msg, self.buf = take_message(self.buf)
            if msg is not None:
                return msg
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65535)
            except socket.timeout:
                return None
            if not d:
                return None
            self.buf += d

    def close(self):
        self.sock.close()


def reply(req, status, phrase, to_tag, lport):
    vias = re.findall(r"(?im)^Via\s*:\s*(.*?)\r?$", req)
    out = [f"SIP/2.0 {status} {phrase}"] + [f"Via: {v}" for v in vias]
    out += [f"From: {hdr(req, 'From')}", f"To: {hdr(req, 'To')};tag={to_tag}",
            f"Call-ID: {hdr(req, 'Call-ID')}", f"CSeq: {hdr(req, 'CSeq')}",
            f"Contact: <sip:phone@{HOST}:{lport};transport=tcp>", "Content-Length: 0"]
    return ("\r\n".join(out) + "\r\n\r\n").encode()


def cmd_calls(a):
    exts = [f"{a.prefix}{i:05d}" for i in range(a.n)]
    insts = [f"00000000-0000-4000-9000-{i:012d}" for i in range(a.n)]
    errors = 0
    # the phones register and go to sleep (their connection closes)
    for i, ext in enumerate(exts):
        p = TcpPhone(a.tcp_port)
        p.send(register_msg(ext, "tcp", p.lport, f"sleep-{rnd()}", 1, token(i, a.token_base), insts[i]))
        r = p.recv(5)
        if r is None or status_of(r) != 200:
            errors += 1
        p.close()
    time.sleep(0.5)
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind((HOST, 0))
    cport = caller.getsockname()[1]
    out = open(a.out, "w")
    ok = 0
    for i, ext in enumerate(exts):
        inv_id = f"call-{i}-{rnd()}"
        branch = "z9hG4bK" + rnd()
        caller.sendto(invite_msg(ext, cport, inv_id, branch), (HOST, a.pbx_port))
        # the push goes out; the emulated app takes a moment to wake
        time.sleep(a.wake_ms / 1000.0)
        p = TcpPhone(a.tcp_port)
        reg_id = f"woken-{i}-{rnd()}"
        p.send(register_msg(ext, "tcp", p.lport, reg_id, 1, token(i, a.token_base), insts[i]))
        got_200 = got_inv = False
        deadline = time.time() + 5
        while time.time() < deadline and not got_inv:
            m = p.recv(deadline - time.time())
            if m is None:
                break
            if status_of(m) == 200 and "REGISTER" in hdr(m, "CSeq"):
                got_200 = True
            elif m.startswith("INVITE "):
                got_inv = True
                p.send(reply(m, 486, "Busy Here", rnd(32), p.lport))
                p.recv(1)  # the ACK
        p.close()
        # the caller: 486 in, ACK out
        final = None
        caller.settimeout(3)
        try:
            while final is None:
                d, _ = caller.recvfrom(65535)
                m = d.decode(errors="replace")
                if status_of(m) >= 200:
                    final = m
        except socket.timeout:
            pass
        if final is not None:
            ack = (f"ACK sip:{ext}@{HOST} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {HOST}:{cport};branch={branch};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: {hdr(final, 'From')}\r\nTo: {hdr(final, 'To')}\r\n"
                   f"Call-ID: {inv_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
            caller.sendto(ack, (HOST, a.pbx_port))
        good = got_200 and got_inv and final is not None and status_of(final) == 486
        ok += good
        errors += not good
        out.write(json.dumps({"i": i, "invite_call_id": inv_id, "register_call_id": reg_id,
                              "ok": good}) + "\n")
        time.sleep(a.gap_ms / 1000.0)
    out.close()
    print(json.dumps({"calls": a.n, "ok": ok, "errors": errors}))
    return 0 if errors == 0 else 1


# ---- the capture ----

def read_pcap(path):
    """(ts_us, proto, sport, dport, payload) for each IPv4 UDP/TCP packet."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xa1b2c3d4:
        endian, nano = "<", False
    elif magic == 0xa1b23c4d:
        endian, nano = "<", True
    else:
        raise SystemExit("not a little-endian pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    out = []
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + incl]
        off += incl
        ts = sec * 1000000 + (frac // 1000 if nano else frac)
        if linktype == 1:
            if len(pkt) < 14 or pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
        elif linktype == 113:  # Linux cooked
            ip = pkt[16:]
        else:
            ip = pkt
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 15) * 4
        proto = ip[9]
        tot = struct.unpack("!H", ip[2:4])[0]
        l4 = ip[ihl:tot]
        if proto == 17 and len(l4) >= 8:
            sport, dport = struct.unpack("!HH", l4[:4])
            out.append((ts, "udp", sport, dport, l4[8:]))
        elif proto == 6 and len(l4) >= 20:
            sport, dport = struct.unpack("!HH", l4[:4])
            doff = (l4[12] >> 4) * 4
            out.append((ts, "tcp", sport, dport, l4[doff:]))
    return out


def pct(v, p):
    s = sorted(v)
    if not s:
        return None
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary(v):
    return {"n": len(v), "p50_us": pct(v, 50), "p99_us": pct(v, 99), "max_us": max(v) if v else None,
            "mean_us": round(sum(v) / len(v)) if v else None}


def cmd_analyze(a):
    pkts = read_pcap(a.pcap)
    calls = [json.loads(l) for l in open(a.calls) if l.strip()]
    callid_re = re.compile(rb"(?im)^(?:Call-ID|i)\s*:\s*(\S+)")
    cseq_re = re.compile(rb"(?im)^CSeq\s*:\s*\d+\s+(\w+)")
    invite_in = {}   # Call-ID -> ts: first INVITE from the PBX to pushgw
    reg_ok_in = {}   # Call-ID -> ts: first 2xx to a REGISTER from the PBX to pushgw
    invite_out = {}  # Call-ID -> ts: first INVITE from pushgw's TCP port to a phone
    reg_ok_out = {}  # Call-ID -> ts: the 2xx to the REGISTER relayed to the phone
    pushes = []      # ts of each TLS write of a push towards the simulator
    for ts, proto, sport, dport, pl in pkts:
        if proto == "udp" and sport == a.pbx_port and dport == a.sip_udp and pl:
            m = callid_re.search(pl)
            if not m:
                continue
            cid = m.group(1).decode()
            if pl.startswith(b"INVITE "):
                invite_in.setdefault(cid, ts)
            elif pl.startswith(b"SIP/2.0 2"):
                c = cseq_re.search(pl)
                if c and c.group(1) == b"REGISTER":
                    reg_ok_in.setdefault(cid, ts)
        elif proto == "tcp" and sport == a.sip_tcp and pl.startswith(b"INVITE "):
            m = callid_re.search(pl)
            if m:
                invite_out.setdefault(m.group(1).decode(), ts)
        elif proto == "tcp" and sport == a.sip_tcp and pl.startswith(b"SIP/2.0 2"):
            m = callid_re.search(pl)
            if m:
                reg_ok_out.setdefault(m.group(1).decode(), ts)
        elif proto == "tcp" and dport == a.sim_port and len(pl) > a.push_min_bytes:
            pushes.append(ts)
    pushes.sort()
    import bisect
    d1, d2, d2a, d2b, missing = [], [], [], [], 0
    per_call = []
    for c in calls:
        if not c.get("ok"):
            missing += 1
            continue
        t_inv = invite_in.get(c["invite_call_id"])
        t_reg = reg_ok_in.get(c["register_call_id"])
        t_out = invite_out.get(c["invite_call_id"])
        if t_inv is None or t_reg is None or t_out is None:
            missing += 1
            continue
        k = bisect.bisect_right(pushes, t_inv)
        if k >= len(pushes) or pushes[k] > t_reg:
            missing += 1
            continue
        d1.append(pushes[k] - t_inv)
        d2.append(t_out - t_reg)
        t_ok = reg_ok_out.get(c["register_call_id"])
        if t_ok is not None:
            d2a.append(t_ok - t_reg)
            d2b.append(t_out - t_ok)
        per_call.append([c["i"], pushes[k] - t_inv, t_out - t_reg])
    res = {"calls": len(calls), "measured": len(d1), "unmatched": missing,
           "invite_in_to_push_out": summary(d1), "register_2xx_in_to_invite_out": summary(d2),
           "of_which_store_then_2xx_out": summary(d2a), "of_which_2xx_out_to_invite_out": summary(d2b)}
    if a.per_call:
        with open(a.per_call, "w") as f:
            json.dump(per_call, f)
    print(json.dumps(res))
    return 0


# ---- scale: many bindings at once ----

class Reg:
    __slots__ = ("ext", "transport", "sock", "lport", "buf", "sent_at", "done", "tok", "inst", "msg")


def cmd_scale(a):
    sel = selectors.DefaultSelector()
    regs = []
    for i in range(a.udp + a.tcp):
        r = Reg()
        r.transport = "udp" if i < a.udp else "tcp"
        r.ext = f"{a.prefix}{i:05d}"
        r.tok = token(i, a.token_base)
        r.inst = f"00000000-0000-4000-a000-{i:012d}"
        r.sock = None
        r.buf = b""
        r.done = False
        regs.append(r)
    t0 = time.time()
    pending = 0
    nxt = 0
    ok = failed = 0
    statuses = {}

    def start(r):
        if r.transport == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            s.setblocking(False)
            r.sock = s
            r.lport = s.getsockname()[1]
            r.msg = register_msg(r.ext, "udp", r.lport, f"s-{r.ext}-{rnd()}", 1, r.tok, r.inst)
            s.sendto(r.msg, (HOST, a.udp_port))
        else:
            s = socket.create_connection((HOST, a.tcp_port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            r.sock = s
            r.lport = s.getsockname()[1]
            s.sendall(register_msg(r.ext, "tcp", r.lport, f"s-{r.ext}-{rnd()}", 1, r.tok, r.inst))
        r.sent_at = time.time()
        sel.register(r.sock, selectors.EVENT_READ, r)

    retrans = 0
    last_check = time.time()
    while (nxt < len(regs) or pending) and time.time() - t0 < a.timeout:
        now = time.time()
        if now - last_check > 0.5:
            # UDP is lossy under load: resend what got no answer in a second
            last_check = now
            for r in regs[:nxt]:
                if r.transport == "udp" and not r.done and r.sock and now - r.sent_at > 1:
                    r.sock.sendto(r.msg, (HOST, a.udp_port))
                    r.sent_at = now
                    retrans += 1
        while pending < a.window and nxt < len(regs):
            start(regs[nxt])
            nxt += 1
            pending += 1
        for key, _ in sel.select(0.5):
            r = key.data
            try:
                d = r.sock.recv(65535)
            except (BlockingIOError, ConnectionError):
                continue
            if not d:
                sel.unregister(r.sock)
                continue
            r.buf += d
            msg, r.buf = take_message(r.buf)
            if msg is None or r.done:
                continue
            st = status_of(msg)
            if st < 200:
                continue
            r.done = True
            pending -= 1
            statuses[st] = statuses.get(st, 0) + 1
            if st == 200:
                ok += 1
            else:
                failed += 1
            if r.transport == "udp":
                sel.unregister(r.sock)
                r.sock.close()  # the app sleeps
                r.sock = None
            else:
                sel.unregister(r.sock)  # kept open, not read any more
    secs = time.time() - t0
    print(json.dumps({"event": "registered", "ok": ok, "failed": failed, "statuses": statuses,
                      "udp_retransmissions": retrans, "seconds": round(secs, 2), "per_s": round(ok / secs) if secs else 0}), flush=True)
    # the held INVITEs: callers at the PBX for sleeping UDP phones
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind((HOST, 0))
    caller.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    cport = caller.getsockname()[1]
    caller.setblocking(False)
    trying = 0
    other = {}
    t1 = time.time()
    for i in range(min(a.invites, a.udp)):
        caller.sendto(invite_msg(regs[i].ext, cport, f"held-{i}-{rnd()}", "z9hG4bK" + rnd()),
                      (HOST, a.pbx_port))
        if a.invite_rate:
            delay = t1 + (i + 1) / a.invite_rate - time.time()
            if delay > 0:
                time.sleep(delay)
    end = time.time() + 5
    while time.time() < end and trying < a.invites:
        try:
            d = caller.recv(65535)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        st = status_of(d.decode(errors="replace"))
        if st == 100:
            trying += 1
        else:
            other[st] = other.get(st, 0) + 1
    print(json.dumps({"event": "invites_sent", "invites": a.invites, "trying": trying,
                      "other": other}), flush=True)
    while not os.path.exists(a.stop_file):
        time.sleep(0.1)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calls")
    c.add_argument("--tcp-port", type=int, required=True)
    c.add_argument("--pbx-port", type=int, required=True)
    c.add_argument("-n", type=int, default=300)
    c.add_argument("--prefix", default="c")
    c.add_argument("--token-base", type=int, default=0xc0000)
    c.add_argument("--wake-ms", type=float, default=20)
    c.add_argument("--gap-ms", type=float, default=5)
    c.add_argument("--out", required=True)
    n = sub.add_parser("analyze")
    n.add_argument("--pcap", required=True)
    n.add_argument("--calls", required=True)
    n.add_argument("--pbx-port", type=int, required=True)
    n.add_argument("--sip-udp", type=int, required=True)
    n.add_argument("--sip-tcp", type=int, required=True)
    n.add_argument("--sim-port", type=int, required=True)
    n.add_argument("--push-min-bytes", type=int, default=100)
    n.add_argument("--per-call")
    s = sub.add_parser("scale")
    s.add_argument("--udp-port", type=int, required=True)
    s.add_argument("--tcp-port", type=int, required=True)
    s.add_argument("--pbx-port", type=int, required=True)
    s.add_argument("--udp", type=int, default=5000)
    s.add_argument("--tcp", type=int, default=5000)
    s.add_argument("--invites", type=int, default=1000)
    s.add_argument("--invite-rate", type=float, default=500)
    s.add_argument("--window", type=int, default=200)
    s.add_argument("--prefix", default="s")
    s.add_argument("--token-base", type=int, default=0xd0000)
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--stop-file", required=True)
    a = ap.parse_args()
    return {"calls": cmd_calls, "analyze": cmd_analyze, "scale": cmd_scale}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
