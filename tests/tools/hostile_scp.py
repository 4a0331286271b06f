"""A DICOM peer that answers with hostile command sets, for the integration tests.

It accepts any association (every proposed presentation context, in Implicit VR Little Endian
when proposed, else its first transfer syntax), reads each request (its command and, when one follows, its data set) and answers it.
With mode "command", the response command set carries extra bytes after group 0000; with mode
"identifier", a C-FIND is answered with one pending response whose identifier (data set) is the
payload, then a final one. Either way it is what the test wants DCMTK on the other side to
parse. The payloads cycle one association after another, so a peer that retries meets each in
turn. A-RELEASE is answered; everything else is
ignored. Serves on 127.0.0.1 in a thread until stop(). Used by test_hostile_commands.py as a
DIMSE destination (answers to C-STORE) and as a PACS to poll (answers to C-FIND).
"""

import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawscu  # noqa: E402


def _recv_exact(conn, n):
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise ConnectionError("peer closed")
        out += chunk
    return out


def _read_pdu(conn):
    head = _recv_exact(conn, 6)
    pdu_type, length = head[0], struct.unpack(">I", head[2:6])[0]
    if length > rawscu.MAX_PDU_ACCEPTED:
        raise ConnectionError("PDU too large")
    return pdu_type, _recv_exact(conn, length)


def _associate_ac(rq_body):
    """An A-ASSOCIATE-AC for an A-ASSOCIATE-RQ body: every context accepted."""
    called, calling = rq_body[4:20], rq_body[20:36]
    body = struct.pack(">HH", 1, 0) + called + calling + bytes(32)
    body += rawscu.item(0x10, rawscu.APPLICATION_CONTEXT.encode())
    pos = 68
    while pos + 4 <= len(rq_body):
        item_type, _, length = struct.unpack(">BBH", rq_body[pos:pos + 4])
        value = rq_body[pos + 4:pos + 4 + length]
        pos += 4 + length
        if item_type != 0x20 or len(value) < 4:
            continue
        pc_id, proposed, sub = value[0], [], 4
        while sub + 4 <= len(value):
            st, _, sl = struct.unpack(">BBH", value[sub:sub + 4])
            if st == 0x40:
                proposed.append(value[sub + 4:sub + 4 + sl].rstrip(b"\0 "))
            sub += 4 + sl
        # Implicit VR LE when proposed: the payloads are written in it.
        implicit = rawscu.IMPLICIT_LE.encode()
        chosen = implicit if implicit in proposed or not proposed else proposed[0]
        body += rawscu.item(0x21, struct.pack(">BBBB", pc_id, 0, 0, 0) + rawscu.item(0x40, chosen))
    user = rawscu.item(0x51, struct.pack(">I", 16384))
    user += rawscu.item(0x52, rawscu.IMPLEMENTATION_CLASS_UID.encode())
    body += rawscu.item(0x50, user)
    return rawscu.pdu(0x02, body)


class HostileScp:
    def __init__(self, payloads, mode="command"):
        """payloads: bytes, one per association, cycled (see the module's text for `mode`)."""
        self.payloads = list(payloads)
        self.mode = mode
        self.associations = 0
        self.answered = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.5)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            payload = self.payloads[self.associations % len(self.payloads)]
            self.associations += 1
            conn.settimeout(30)
            try:
                self._association(conn, payload)
            except (OSError, ConnectionError):
                pass
            finally:
                conn.close()

    def _association(self, conn, payload):
        pdu_type, body = _read_pdu(conn)
        if pdu_type != 0x01:
            return
        conn.sendall(_associate_ac(body))
        command, fields, waiting_for_data = b"", None, False
        while not self._stop.is_set():
            pdu_type, body = _read_pdu(conn)
            if pdu_type == 0x05:  # A-RELEASE-RQ
                conn.sendall(rawscu.pdu(0x06, bytes(4)))
                return
            if pdu_type != 0x04:
                return
            pos = 0
            while pos + 6 <= len(body):
                length = struct.unpack(">I", body[pos:pos + 4])[0]
                pc_id, control = body[pos + 4], body[pos + 5]
                data = body[pos + 6:pos + 4 + length]
                pos += 4 + length
                if control & 0x01:
                    command += data
                    if control & 0x02:
                        fields = rawscu.parse_command(command)
                        command = b""
                        has_data = struct.unpack("<H", fields.get(0x0800, b"\x01\x01")[:2])[0]
                        waiting_for_data = has_data != 0x0101
                        if not waiting_for_data:
                            self._answer(conn, pc_id, fields, payload)
                elif control & 0x02 and waiting_for_data:
                    waiting_for_data = False
                    self._answer(conn, pc_id, fields, payload)

    def _answer(self, conn, pc_id, fields, payload):
        field = struct.unpack("<H", fields.get(0x0100, b"\x00\x00")[:2])[0]

        def response(status, data_set):
            elements = [(0x0002, fields.get(0x0002, rawscu.uid_bytes(rawscu.VERIFICATION))),
                        (0x0100, rawscu.us(field | 0x8000)),
                        (0x0120, fields.get(0x0110, rawscu.us(1))),
                        (0x0800, rawscu.us(0x0000 if data_set else 0x0101)),
                        (0x0900, rawscu.us(status))]
            if 0x1000 in fields:
                elements.append((0x1000, fields[0x1000]))
            return rawscu.command_set(sorted(elements))

        def send(data, is_command):
            step = 16000
            for i in range(0, max(len(data), 1), step):
                last = i + step >= len(data)
                conn.sendall(rawscu.pdu(0x04, rawscu.pdv(pc_id, is_command, last,
                                                         data[i:i + step])))

        self.answered += 1
        if self.mode == "identifier" and field == 0x0020:  # C-FIND-RQ
            send(response(0xFF00, True), True)
            send(payload, False)
            send(response(0x0000, False), True)
            return
        send(response(0x0000, False) + payload, True)
