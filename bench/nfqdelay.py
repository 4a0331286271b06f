#!/usr/bin/env python3
"""A per-packet delay for the bench's emulated WAN link (bench/wan.py), since this kernel has no
netem: an NFQUEUE listener that holds every packet of its queue for a fixed time, then accepts
it, in arrival order.

  python3 bench/nfqdelay.py --queue 0 --delay-ms 25

Talks nfnetlink_queue directly over a netlink socket (no library: only the Python standard
library), in "meta" copy mode (the kernel sends the packet's id, never its bytes), with GSO
packets passed whole, and accepts packets with one batch verdict for every packet now due (a
constant delay keeps the queue in id order). Meant for iptables' raw PREROUTING on lo, i.e.
after the sending socket's qdisc (the rate limit) and after the loopback device has orphaned the
packet, so the sender's TCP small-queue accounting does not see the delay line.

Limits: one process, Python: delay accuracy is the scheduler's wake-up time (about 0.1 ms on an
idle machine, worse on a busy one); about 20,000 packets/s at most, far above what 1 Gbit/s of
64 KB loopback packets needs. Prints `ready` on stdout once bound; exits on SIGTERM.
"""

import argparse
import collections
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NFQA_CFG_F_GSO = 4
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


class Queue:
    def __init__(self, number):
        self.number = number
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        for opt in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root), else as much as allowed
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, 64 << 20)
                break
            except OSError:
                continue
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)

    def send(self, msg_type, payload, ack=False, family=socket.AF_UNSPEC):
        self.seq += 1
        body = struct.pack("!BBH", family, 0, self.number) + payload
        flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
        head = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags,
                           self.seq, 0)
        self.sock.send(head + body)
        if ack:
            self.expect_ack()

    def expect_ack(self):
        data = self.sock.recv(65536)
        length, kind = struct.unpack_from("=IH", data, 0)
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, 16)
            if err != 0:
                raise OSError(-err, "nfnetlink_queue: " + os.strerror(-err))

    def bind(self, maxlen):
        self.send(NFQNL_MSG_CONFIG, attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)),
                  ack=True)
        self.send(NFQNL_MSG_CONFIG,
                  attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)) +
                  attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)) +
                  attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_GSO)) +
                  attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_GSO)), ack=True)

    def unbind(self):
        try:
            self.send(NFQNL_MSG_CONFIG,
                      attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, 0)))
        except OSError:
            pass

    def accept_up_to(self, packet_id):
        self.send(NFQNL_MSG_VERDICT_BATCH,
                  attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))

    def packet_ids(self, data):
        """Ids of the packets in one recv()'s worth of netlink messages."""
        out = []
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = off + 20  # nlmsghdr (16) + nfgenmsg (4)
                end = off + length
                while a + 4 <= end:
                    alen, akind = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if (akind & 0x7FFF) == NFQA_PACKET_HDR:
                        out.append(struct.unpack_from("!I", data, a + 4)[0])
                        break
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--maxlen", type=int, default=65536)
    args = ap.parse_args()
    delay = args.delay_ms / 1000.0
    q = Queue(args.queue)
    q.bind(args.maxlen)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print("ready", flush=True)
    held = collections.deque()  # (due time, packet id), in arrival (= id) order
    poller = select.poll()
    poller.register(q.sock, select.POLLIN)
    buf = bytearray(1 << 20)
    while not stop:
        now = time.monotonic()
        last = None
        while held and held[0][0] <= now:
            last = held.popleft()[1]
        if last is not None:
            q.accept_up_to(last)
        timeout = max(0.0, held[0][0] - time.monotonic()) * 1000 if held else 200
        try:
            ready = poller.poll(timeout)
        except InterruptedError:
            continue
        if not ready:
            continue
        while True:
            try:
                n = q.sock.recv_into(buf, len(buf), socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            arrived = time.monotonic() + delay
            for pid in q.packet_ids(memoryview(buf)[:n].tobytes()):
                held.append((arrived, pid))
    if held:
        q.accept_up_to(held[-1][1])
    q.unbind()
    return 0


if __name__ == "__main__":
    sys.exit(main())
