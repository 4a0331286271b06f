#!/usr/bin/env python3
"""rawscu: a raw DICOM Upper Layer (PS3.8) client for hostile-input tests.

It speaks just enough of the protocol to open an association, send one C-STORE (or C-ECHO), read
the answer and release. Every part can be broken on purpose: a truncated or arbitrary dataset,
a stall in the middle of the stream, no release, a malformed PDU, oversized PDUs, a command that
disagrees with the dataset. Python 3 standard library only.

Output: exactly one line of space-separated key=value pairs (values shell-quoted when needed,
so shlex.split() reads them back), e.g.
    status=0x0000 release=ok
    status=0xA700 error_comment='Out of resources' release=ok
    rejected result=1 source=1 reason=7
    aborted source=2 reason=0          (A-ABORT received)   /   aborted closed=1   (connection lost)
    context-rejected result=3
    timeout phase=response
    error='connect: [Errno 111] Connection refused'

Exit codes: 0 response received (status printed), 1 other error, 2 usage, 3 association rejected,
4 aborted / connection closed by the peer, 5 presentation context not accepted, 6 time-out.
"""

import argparse
import os
import select
import shlex
import socket
import struct
import sys
import time

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
# A UUID-derived root (PS3.5 B.2), so no organisation's root is borrowed.
IMPLEMENTATION_CLASS_UID = "2.25.153898137512406934710187405398118426311"
IMPLEMENTATION_VERSION = "DIRGW_RAWSCU"

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REJECTED, EXIT_ABORTED, EXIT_CONTEXT, EXIT_TIMEOUT = range(7)

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
            b"UV"}
MAX_PDU_ACCEPTED = 64 * 1024 * 1024  # refuse to buffer a larger incoming PDU


class Outcome(Exception):
    """Ends the run with one output line and an exit code."""

    def __init__(self, code, **fields):
        super().__init__(fields)
        self.code = code
        self.fields = fields


def emit(head, **fields):
    parts = [head] if head else []
    for key, value in fields.items():
        if value is None:
            continue
        parts.append(f"{key}={shlex.quote(str(value))}")
    print(" ".join(parts), flush=True)


# --------------------------------------------------------------------------------------------
# Encoding helpers.

def uid_bytes(uid):
    b = uid.encode("ascii")
    return b + b"\0" if len(b) % 2 else b


def ae_bytes(ae):
    b = ae.encode("ascii")[:16]
    return b.ljust(16, b" ")


def item(item_type, payload):
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def pdu(pdu_type, payload):
    return struct.pack(">BBI", pdu_type, 0, len(payload)) + payload


def implicit_element(group, element, value):
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, element, len(value)) + value


def command_set(elements):
    """elements: list of (element, bytes) in group 0000, ascending; adds the group length."""
    body = b"".join(implicit_element(0x0000, e, v) for e, v in elements)
    return implicit_element(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def us(v):
    return struct.pack("<H", v)


def c_store_rq(message_id, sop_class, sop_instance, priority=0):
    return command_set([
        (0x0002, uid_bytes(sop_class)),
        (0x0100, us(0x0001)),
        (0x0110, us(message_id)),
        (0x0700, us(priority)),
        (0x0800, us(0x0000)),  # a dataset follows
        (0x1000, uid_bytes(sop_instance)),
    ])


def c_echo_rq(message_id):
    return command_set([
        (0x0002, uid_bytes(VERIFICATION)),
        (0x0100, us(0x0030)),
        (0x0110, us(message_id)),
        (0x0800, us(0x0101)),  # no dataset
    ])


def n_event_report_rq(message_id, event_type=1):
    """A storage commitment report (PS3.4 J.3.3): Storage Commitment Push Model, a data set."""
    return command_set([
        (0x0002, uid_bytes(STORAGE_COMMITMENT)),
        (0x0100, us(0x0100)),
        (0x0110, us(message_id)),
        (0x0800, us(0x0000)),
        (0x1000, uid_bytes(STORAGE_COMMITMENT_INSTANCE)),
        (0x1002, us(event_type)),
    ])


def associate_rq(calling, called, contexts, max_pdu):
    """contexts: list of (id, abstract_syntax, [transfer syntaxes])."""
    body = struct.pack(">HH", 1, 0) + ae_bytes(called) + ae_bytes(calling) + bytes(32)
    body += item(0x10, APPLICATION_CONTEXT.encode())
    for pc_id, abstract, syntaxes in contexts:
        sub = item(0x30, abstract.encode())
        for ts in syntaxes:
            sub += item(0x40, ts.encode())
        body += item(0x20, struct.pack(">BBBB", pc_id, 0, 0, 0) + sub)
    user = item(0x51, struct.pack(">I", max_pdu))
    user += item(0x52, IMPLEMENTATION_CLASS_UID.encode())
    user += item(0x55, IMPLEMENTATION_VERSION.encode())
    body += item(0x50, user)
    return pdu(0x01, body)


def pdv(pc_id, is_command, last, data):
    control = (0x01 if is_command else 0x00) | (0x02 if last else 0x00)
    return struct.pack(">IBB", len(data) + 2, pc_id, control) + data


# --------------------------------------------------------------------------------------------
# Part-10 files: find the meta UIDs and where the dataset starts.

def read_part10_meta(path):
    with open(path, "rb") as f:
        head = f.read(132)
        if len(head) < 132 or head[128:132] != b"DICM":
            raise ValueError("not a DICOM Part-10 file (no DICM at offset 128); "
                             "use --raw-dataset for bare datasets")
        first = f.read(12)
        if len(first) < 12 or first[:4] != b"\x02\x00\x00\x00" or first[4:6] != b"UL":
            raise ValueError("meta header has no explicit VR LE group length (0002,0000)")
        (glen,) = struct.unpack("<I", first[8:12])
        meta = f.read(glen)
        if len(meta) < glen:
            raise ValueError("meta group length beyond end of file")
    found = {}
    pos = 0
    while pos + 8 <= len(meta):
        group, element = struct.unpack("<HH", meta[pos:pos + 4])
        vr = meta[pos + 4:pos + 6]
        if vr in LONG_VRS:
            (length,) = struct.unpack("<I", meta[pos + 8:pos + 12])
            pos += 12
        else:
            (length,) = struct.unpack("<H", meta[pos + 6:pos + 8])
            pos += 8
        value = meta[pos:pos + length]
        pos += length
        if group == 0x0002 and element in (0x0002, 0x0003, 0x0010):
            found[element] = value.rstrip(b"\0 ").decode("ascii", "replace")
    return {
        "sop_class": found.get(0x0002),
        "sop_instance": found.get(0x0003),
        "transfer_syntax": found.get(0x0010),
        "dataset_offset": 132 + 12 + glen,
    }


# --------------------------------------------------------------------------------------------
# The connection.

class Connection:
    def __init__(self, host, port, timeout):
        self.timeout = timeout
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except socket.timeout:
            raise Outcome(EXIT_TIMEOUT, phase="connect")
        except OSError as e:
            raise Outcome(EXIT_ERROR, error=f"connect: {e}")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = 0

    def send(self, data, phase):
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise Outcome(EXIT_TIMEOUT, phase=phase)
        except (BrokenPipeError, ConnectionResetError):
            raise self.peer_gone()
        self.sent += len(data)

    def recv_exact(self, n, phase):
        chunks = []
        while n > 0:
            try:
                chunk = self.sock.recv(min(n, 1 << 20))
            except socket.timeout:
                raise Outcome(EXIT_TIMEOUT, phase=phase)
            except ConnectionResetError:
                raise Outcome(EXIT_ABORTED, closed=1, reset=1)
            if not chunk:
                raise Outcome(EXIT_ABORTED, closed=1)
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read_pdu(self, phase):
        header = self.recv_exact(6, phase)
        pdu_type, _, length = struct.unpack(">BBI", header)
        if length > MAX_PDU_ACCEPTED:
            raise Outcome(EXIT_ERROR, error=f"peer sent a PDU of {length} bytes")
        body = self.recv_exact(length, phase)
        if pdu_type == 0x07:  # A-ABORT
            source, reason = (body[2], body[3]) if len(body) >= 4 else (None, None)
            raise Outcome(EXIT_ABORTED, source=source, reason=reason)
        return pdu_type, body

    def peer_gone(self):
        """After a failed send: report an A-ABORT if the peer sent one, else a closed socket."""
        try:
            self.sock.settimeout(1.0)
            self.read_pdu("abort")
        except Outcome as o:
            return o
        except OSError:
            pass
        return Outcome(EXIT_ABORTED, closed=1)

    def wait_readable(self, seconds):
        readable, _, _ = select.select([self.sock], [], [], seconds)
        return bool(readable)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_associate_ac(body):
    """Returns ({pc_id: (result, ts)}, peer_max_pdu)."""
    contexts = {}
    peer_max = 0
    pos = 68  # version(2) reserved(2) called(16) calling(16) reserved(32)
    while pos + 4 <= len(body):
        item_type, _, length = struct.unpack(">BBH", body[pos:pos + 4])
        value = body[pos + 4:pos + 4 + length]
        pos += 4 + length
        if item_type == 0x21 and len(value) >= 4:
            pc_id, result = value[0], value[2]
            ts = None
            sub = 4
            while sub + 4 <= len(value):
                st, _, sl = struct.unpack(">BBH", value[sub:sub + 4])
                if st == 0x40:
                    ts = value[sub + 4:sub + 4 + sl].rstrip(b"\0 ").decode("ascii", "replace")
                sub += 4 + sl
            contexts[pc_id] = (result, ts)
        elif item_type == 0x50:
            sub = 0
            while sub + 4 <= len(value):
                st, _, sl = struct.unpack(">BBH", value[sub:sub + 4])
                if st == 0x51 and sl == 4:
                    (peer_max,) = struct.unpack(">I", value[sub + 4:sub + 8])
                sub += 4 + sl
    return contexts, peer_max


def parse_command(data):
    """Implicit VR LE command set -> {element: bytes}."""
    out = {}
    pos = 0
    while pos + 8 <= len(data):
        group, element, length = struct.unpack("<HHI", data[pos:pos + 8])
        pos += 8
        if group == 0x0000:
            out[element] = data[pos:pos + length]
        pos += length
    return out


# --------------------------------------------------------------------------------------------
# The run.

def dataset_chunks(args, meta, chunk):
    """Yields the dataset bytes in chunks, honouring --truncate; streams from disk."""
    if args.raw_dataset:
        path, offset = args.raw_dataset, 0
    else:
        path, offset = args.file, meta["dataset_offset"]
    size = os.path.getsize(path) - offset
    if args.truncate is not None:
        size = min(size, args.truncate)
    with open(path, "rb") as f:
        f.seek(offset)
        left = size
        while left > 0:
            data = f.read(min(chunk, left))
            if not data:
                break
            left -= len(data)
            yield data, left == 0
    if size <= 0:
        yield b"", True


def p_data_stream(args, pc_id, command, meta, pdv_max):
    """The P-DATA-TF PDUs for one command (and its dataset), one PDU per PDV."""
    for start in range(0, max(len(command), 1), pdv_max):
        part = command[start:start + pdv_max]
        last = start + pdv_max >= len(command)
        yield pdu(0x04, pdv(pc_id, True, last, part))
    if meta is None:
        return
    for data, last in dataset_chunks(args, meta, pdv_max):
        yield pdu(0x04, pdv(pc_id, False, last, data))


def send_stream(conn, args, pdus):
    """Sends the PDUs; with --stall-after, pauses once after that many bytes."""
    stall_at = args.stall_after
    sent = 0
    for data in pdus:
        if stall_at is not None and sent <= stall_at < sent + len(data):
            cut = stall_at - sent
            conn.send(data[:cut], "send")
            stall(conn, args.stall_seconds)
            conn.send(data[cut:], "send")
            stall_at = None
        else:
            conn.send(data, "send")
        sent += len(data)
    if stall_at is not None and stall_at >= sent:
        stall(conn, args.stall_seconds)


def stall(conn, seconds):
    """Sleeps, but reports at once if the peer aborts or closes meanwhile."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if conn.wait_readable(left):
            # The peer spoke (or closed) while we stalled: an A-ABORT, a close, or an early answer.
            conn.sock.settimeout(conn.timeout)
            pdu_type, body = conn.read_pdu("stall")
            raise Outcome(EXIT_ERROR, error=f"peer sent PDU type 0x{pdu_type:02x} during the stall")


def read_response(conn, expect_command_field):
    command = b""
    while True:
        pdu_type, body = conn.read_pdu("response")
        if pdu_type != 0x04:
            raise Outcome(EXIT_ERROR, error=f"expected P-DATA-TF, got PDU type 0x{pdu_type:02x}")
        pos = 0
        while pos + 6 <= len(body):
            (length,) = struct.unpack(">I", body[pos:pos + 4])
            control = body[pos + 5]
            data = body[pos + 6:pos + 4 + length]
            pos += 4 + length
            if control & 0x01:
                command += data
                if control & 0x02:
                    fields = parse_command(command)
                    field = fields.get(0x0100)
                    if field is not None and struct.unpack("<H", field[:2])[0] != expect_command_field:
                        raise Outcome(EXIT_ERROR,
                                      error=f"unexpected command field 0x{struct.unpack('<H', field[:2])[0]:04x}")
                    return fields


def release(conn):
    conn.send(pdu(0x05, bytes(4)), "release")
    try:
        pdu_type, _ = conn.read_pdu("release")
    except Outcome as o:
        if o.code == EXIT_ABORTED:
            return "aborted"
        if o.code == EXIT_TIMEOUT:
            return "timeout"
        raise
    return "ok" if pdu_type == 0x06 else f"pdu-0x{pdu_type:02x}"


def broken_pdu(kind):
    if kind == "type":  # a PDU type PS3.8 does not define
        return pdu(0x42, bytes(4))
    if kind == "length":  # a P-DATA-TF that announces far more than ever comes
        return struct.pack(">BBI", 0x04, 0, 0x7FFFFFF0) + struct.pack(">IBB", 6, 1, 0x03)
    if kind == "pdv":  # a PDV item longer than the PDU holding it
        return pdu(0x04, struct.pack(">IBB", 4096, 1, 0x03) + b"\0\0\0\0")
    raise ValueError(kind)


def run(args):
    meta = None
    if args.n_event_report:
        args.raw_dataset = args.n_event_report
        meta = {"dataset_offset": 0}
        sop_class, transfer_syntax = STORAGE_COMMITMENT, IMPLICIT_LE
    elif not args.echo:
        if args.raw_dataset:
            meta = {"sop_class": SECONDARY_CAPTURE, "sop_instance": "2.25.1",
                    "transfer_syntax": EXPLICIT_LE, "dataset_offset": 0}
        else:
            try:
                meta = read_part10_meta(args.file)
            except (OSError, ValueError, struct.error) as e:
                raise Outcome(EXIT_USAGE, error=f"{args.file}: {e}")
        sop_class = args.sop_class or meta["sop_class"] or SECONDARY_CAPTURE
        sop_instance = args.sop_instance or meta["sop_instance"] or "2.25.1"
        transfer_syntax = args.ts or meta["transfer_syntax"] or EXPLICIT_LE
    contexts = [(1, VERIFICATION, [IMPLICIT_LE])]
    if not args.echo:
        contexts.append((3, sop_class, [transfer_syntax]))
    next_id = 5
    for spec in args.context:
        abstract, _, syntaxes = spec.partition(":")
        contexts.append((next_id, abstract, syntaxes.split(",") if syntaxes else [IMPLICIT_LE]))
        next_id += 2

    conn = Connection(args.host, args.port, args.timeout)
    try:
        conn.send(associate_rq(args.calling_ae, args.called_ae, contexts, args.max_pdu), "associate")
        pdu_type, body = conn.read_pdu("associate")
        if pdu_type == 0x03:
            result, source, reason = (body[1], body[2], body[3]) if len(body) >= 4 else (0, 0, 0)
            raise Outcome(EXIT_REJECTED, rejected=None, result=result, source=source, reason=reason)
        if pdu_type != 0x02:
            raise Outcome(EXIT_ERROR, error=f"expected A-ASSOCIATE-AC, got PDU type 0x{pdu_type:02x}")
        accepted, peer_max = parse_associate_ac(body)
        pc_id = 1 if args.echo else 3
        result, _ = accepted.get(pc_id, (None, None))
        if result != 0:
            raise Outcome(EXIT_CONTEXT, result=result if result is not None else "missing")

        if args.broken_pdu:
            conn.send(broken_pdu(args.broken_pdu), "send")
            conn.read_pdu("response")  # A-ABORT or close expected: raises
            raise Outcome(EXIT_ERROR, error="peer answered a malformed PDU without aborting")

        pdu_max = args.pdu_size or (peer_max if peer_max else 16384)
        pdv_max = max(pdu_max - 6, 2)  # the PDV item header (length, context id, control) is 6 bytes
        if args.echo:
            command, expect = c_echo_rq(args.message_id), 0x8030
        elif args.n_event_report:
            command, expect = n_event_report_rq(args.message_id), 0x8100
        else:
            command, expect = c_store_rq(args.message_id, sop_class, sop_instance), 0x8001
        if args.command_extra:
            # Elements after group 0000, outside its group length: a hostile command set.
            with open(args.command_extra, "rb") as f:
                command += f.read()
        send_stream(conn, args, p_data_stream(args, pc_id, command, meta, pdv_max))

        fields = read_response(conn, expect)
        status = fields.get(0x0900)
        out = {"status": f"0x{struct.unpack('<H', status[:2])[0]:04X}" if status else "missing"}
        comment = fields.get(0x0902)
        if comment:
            out["error_comment"] = comment.rstrip(b"\0 ").decode("ascii", "replace")
        if args.no_release:
            out["release"] = "skipped"
        else:
            out["release"] = release(conn)
        raise Outcome(EXIT_OK, **out)
    finally:
        conn.close()


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Raw DICOM UL client: C-STORE a file (or C-ECHO) with optional breakage.",
        epilog="Exit: 0 response, 1 error, 2 usage, 3 rejected, 4 aborted/closed, "
               "5 context not accepted, 6 time-out.")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("file", nargs="?", help="DICOM Part-10 file; its dataset is sent")
    p.add_argument("--calling-ae", default="RAWSCU")
    p.add_argument("--called-ae", default="ANY-SCP")
    p.add_argument("--echo", action="store_true", help="send C-ECHO instead of C-STORE")
    p.add_argument("--raw-dataset", metavar="FILE",
                   help="send these bytes as the dataset, as they are (no meta header parsing)")
    p.add_argument("--truncate", type=int, metavar="N", help="send only the first N dataset bytes")
    p.add_argument("--sop-class", help="Affected SOP Class UID (default: from the meta header)")
    p.add_argument("--sop-instance", help="Affected SOP Instance UID (default: from the meta header)")
    p.add_argument("--ts", help="transfer syntax to propose and claim (default: the file's)")
    p.add_argument("--context", action="append", default=[], metavar="ABSTRACT[:TS,TS...]",
                   help="an extra presentation context to propose (repeatable)")
    p.add_argument("--max-pdu", type=int, default=16384,
                   help="maximum PDU length we announce for receiving (default 16384)")
    p.add_argument("--pdu-size", type=int,
                   help="P-DATA-TF PDU size to send (default: the peer's maximum); may exceed it")
    p.add_argument("--message-id", type=int, default=1)
    p.add_argument("--n-event-report", metavar="FILE",
                   help="send a storage commitment N-EVENT-REPORT whose data set is the file's "
                        "bytes (implicit VR LE)")
    p.add_argument("--command-extra", metavar="FILE",
                   help="implicit VR LE elements (the file's bytes) appended to the command set")
    p.add_argument("--stall-after", type=int, metavar="N",
                   help="after N bytes of P-DATA on the wire, pause --stall-seconds")
    p.add_argument("--stall-seconds", type=float, default=60.0)
    p.add_argument("--no-release", action="store_true", help="close without A-RELEASE")
    p.add_argument("--broken-pdu", nargs="?", const="type", choices=["type", "length", "pdv"],
                   help="after the association, send a malformed PDU (default kind: type)")
    p.add_argument("--timeout", type=float, default=30.0, help="socket time-out in seconds")
    args = p.parse_args(argv)
    if not args.echo and not args.broken_pdu and not (args.file or args.raw_dataset or
                                                      args.n_event_report):
        p.error("a FILE or --raw-dataset is needed unless --echo or --broken-pdu")
    if args.file and args.raw_dataset:
        p.error("give either FILE or --raw-dataset")
    if args.broken_pdu and not (args.file or args.raw_dataset):
        args.echo = True  # only the association matters
    if args.truncate is not None and args.truncate < 0:
        p.error("--truncate must be >= 0")
    if args.pdu_size is not None and args.pdu_size < 8:
        p.error("--pdu-size must be at least 8")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except Outcome as o:
        fields = dict(o.fields)
        if o.code == EXIT_REJECTED:
            fields.pop("rejected", None)
            emit("rejected", **fields)
        elif o.code == EXIT_ABORTED:
            emit("aborted", **fields)
        elif o.code == EXIT_CONTEXT:
            emit("context-rejected", **fields)
        elif o.code == EXIT_TIMEOUT:
            emit("timeout", **fields)
        else:
            emit(None, **fields)
        return o.code
    except KeyboardInterrupt:
        emit(None, error="interrupted")
        return EXIT_ERROR
    emit(None, error="no outcome")
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
