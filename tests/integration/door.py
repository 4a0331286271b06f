"""Helpers for the front-door tests (test_dicom_tls.py, test_connections.py): test certificates
made with openssl, a raw A-ASSOCIATE-RQ to time how fast a rejected connection is closed, and the
catalog's refusals and audit entries."""

import os
import socket
import sqlite3
import struct
import subprocess
import time


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


class TestPki:
    """A test CA, the SCP's certificate and client certificates, in `work`/pki."""

    def __init__(self, work):
        self.dir = os.path.join(work, "pki")
        os.makedirs(self.dir, exist_ok=True)
        self.ca = self._ca("ca", "/CN=dirgw test CA")
        self.rogue_ca = self._ca("rogue-ca", "/CN=somebody else's CA")
        self.server = self.issue("scp", "/O=Lakeside/CN=localhost", self.ca)
        self.client = self.issue("pacs1", "/O=Lakeside/CN=pacs1", self.ca)
        self.intruder = self.issue("intruder", "/O=Lakeside/CN=intruder", self.ca)
        self.rogue = self.issue("rogue", "/O=Lakeside/CN=pacs1", self.rogue_ca)
        self.expired = self.issue("expired", "/O=Lakeside/CN=pacs1", self.ca, days=-1)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, subject):
        key, pem = self.path(name + ".key"), self.path(name + ".pem")
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
                 "-keyout", key, "-out", pem)
        return (pem, key)

    def issue(self, name, subject, ca, days=2):
        """A certificate for `subject` signed by `ca`; days=-1 gives one already expired."""
        key, csr, pem = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".pem")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", key,
                 "-out", csr)
        _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                 "-days", str(days), "-out", pem)
        os.chmod(key, 0o600)
        return (pem, key)


def _item(item_type, payload):
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def associate_rq(calling, called):
    """A minimal A-ASSOCIATE-RQ proposing Verification with Implicit VR Little Endian."""
    app_ctx = _item(0x10, b"1.2.840.10008.3.1.1.1")
    abstract = _item(0x30, b"1.2.840.10008.1.1")
    ts = _item(0x40, b"1.2.840.10008.1.2")
    pc = _item(0x20, bytes([1, 0, 0, 0]) + abstract + ts)
    user = _item(0x50, _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.3.4"))
    body = (struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode()
            + bytes(32) + app_ctx + pc + user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def time_to_close(sock, first_pdu_type=None, timeout=60):
    """Reads until the peer closes; returns (seconds from the first byte read to EOF, first PDU
    type). The clock starts at the answer, so only how long the peer keeps the socket counts."""
    sock.settimeout(timeout)
    first, started = None, None
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            if first is None:
                first, started = chunk[0], time.monotonic()
    except (ConnectionResetError, OSError):
        pass
    if started is None:
        started = time.monotonic()
    return time.monotonic() - started, first


def refusals(state_dir):
    db = sqlite3.connect(f"file:{os.path.join(state_dir, 'catalog.db')}?mode=ro", uri=True)
    rows = db.execute("SELECT calling_ae, peer, reason, reason_code FROM refusals ORDER BY id").fetchall()
    db.close()
    return rows


def audit_refusals(state_dir):
    db = sqlite3.connect(f"file:{os.path.join(state_dir, 'catalog.db')}?mode=ro", uri=True)
    rows = db.execute("SELECT actor, outcome, detail FROM audit_events "
                      "WHERE type = 'connection_refused' ORDER BY seq").fetchall()
    db.close()
    return rows
