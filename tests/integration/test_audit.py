#!/usr/bin/env python3
"""The audit trail as IT staff use it: objects received, studies sent, operator actions, start
and stop are recorded; `dirgw audit verify` proves the chain intact; an edited, a removed and a
reordered entry are each found and named; `dirgw audit export` writes DICOM audit messages."""

import re
import socket
import ssl
import subprocess
import threading
import os
import sqlite3
import sys
import xml.dom.minidom

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def make_cert(work):
    crt, key = os.path.join(work, "syslog.crt"), os.path.join(work, "syslog.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return crt, key


class SyslogReceiver:
    """A TLS syslog collector (RFC 5425 octet counting), standing in for the audit repository."""

    def __init__(self, cert, port=0, frames=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert[0], cert[1])
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.frames = frames if frames is not None else []
        self.ctx = ctx
        self.running = True
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
                tls = self.ctx.wrap_socket(conn, server_side=True)
            except OSError:
                continue
            buf = b""
            while True:
                try:
                    chunk = tls.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                while b" " in buf:
                    n, rest = buf.split(b" ", 1)
                    if len(rest) < int(n):
                        break
                    self.frames.append(rest[:int(n)].decode("utf-8", "replace"))
                    buf = rest[int(n):]
            tls.close()

    def close(self):
        self.running = False
        self.sock.close()


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-audit-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    failures = check.failures

    uid, files = harness.synth(args.build_dir, os.path.join(work, "a"), "CT", 5, seed=41,
                               patient_index=4, manifest=manifest, extra=["--rows", "64", "--cols", "64"])
    repo = harness.Orthanc(work).start()
    cert = make_cert(work)
    syslog = SyslogReceiver(cert)
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="1s",
                         extra_yaml=f"audit: {{ syslog: {{ enabled: true, host: localhost, "
                                    f"port: {syslog.port}, ca: {cert[0]} }} }}\n").start()
    rc, out = harness.storescu(gw.port, files)
    check(rc == 0, "storescu")
    harness.wait_for("the study to be sent", lambda: gw.status()["destinations"][0]["pending_instances"] == 0
                     and repo.count_instances() == 5, 30, 0.3)
    # Forwarded to the audit repository as RFC 5424 over TLS; while it is down the trail is
    # the backlog, delivered in order when it is back.
    harness.wait_for("audit entries at the syslog receiver", lambda: len(syslog.frames) >= 7, 30, 0.3)
    check(all("<AuditMessage" in f and "dirgw@32473" in f for f in syslog.frames),
          "each frame is an RFC 5424 message carrying a DICOM audit message and the chain values")
    syslog.close()
    before = len(syslog.frames)
    gw.run_cli("hold", uid)
    gw.run_cli("release", uid)
    harness.wait_for("status to warn that the audit repository is unreachable",
                     lambda: any("audit repository" in w for w in gw.status()["warnings"]), 30, 0.5)
    syslog = SyslogReceiver(cert, port=syslog.port, frames=syslog.frames)
    harness.wait_for("the backlog to reach the audit repository", lambda: len(syslog.frames) >= before + 2, 30, 0.3)
    seqs = [int(re.search(r"seq=\"(\d+)\"", f).group(1)) for f in syslog.frames]
    check(seqs == sorted(seqs) and len(seqs) == len(set(seqs)), f"delivered in order, once each: {seqs}")
    rc, out, err = gw.run_cli("audit", "verify")
    check(rc == 0 and "audit trail intact" in out, f"verify on an untouched trail: {rc} {out} {err}")
    out_file = os.path.join(work, "audit.xml")
    rc, out, err = gw.run_cli("audit", "export", "--since", "1d", "--out", out_file)
    check(rc == 0, f"export: {err}")
    doc = xml.dom.minidom.parse(out_file)
    codes = [e.getAttribute("csd-code") for e in doc.getElementsByTagName("EventID")]
    check(codes.count("110104") >= 6, f"5 instances received + 1 study sent as 110104: {codes}")
    check("110100" in codes, "application start recorded")
    text = open(out_file).read()
    check(uid in text, "the study UID is in the export")
    gw.stop()

    db_path = os.path.join(gw.state_dir, "catalog.db")
    db = sqlite3.connect(db_path)
    n = db.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    types = [r[0] for r in db.execute("SELECT type FROM audit_events ORDER BY seq")]
    check(types[0] == "started" and types[-1] == "stopped", f"start and stop: {types[:2]} .. {types[-2:]}")
    for t in ("object_received", "study_sent", "operator_action", "audit_exported"):
        check(t in types, f"{t} recorded")
    try:
        db.execute("UPDATE audit_events SET actor = 'x' WHERE seq = 3")
        check(False, "the trigger must refuse an update")
    except sqlite3.DatabaseError:
        pass

    def tamper(sql):
        db.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
        db.executescript(sql)
        db.commit()

    def verify():
        gw.start()
        rc, out, err = gw.run_cli("audit", "verify")
        gw.stop()
        return rc, out

    backup = os.path.join(work, "catalog-backup.db")
    db.commit()
    db.execute(f"VACUUM INTO '{backup}'")

    def restore():
        nonlocal db
        db.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db_path + suffix):
                os.unlink(db_path + suffix)
        import shutil
        shutil.copy(backup, db_path)
        db = sqlite3.connect(db_path)

    tamper("UPDATE audit_events SET outcome = 'failure:nothing' WHERE seq = 4;")
    rc, out = verify()
    check(rc == 1 and "BROKEN at entry 4" in out, f"an edited entry: {rc} {out}")
    restore()
    tamper("DELETE FROM audit_events WHERE seq = 5;")
    rc, out = verify()
    check(rc == 1 and "BROKEN at entry" in out, f"a removed entry: {rc} {out}")
    restore()
    tamper("UPDATE audit_events SET seq = -1 WHERE seq = 6; UPDATE audit_events SET seq = 6 WHERE seq = 7;"
           " UPDATE audit_events SET seq = 7 WHERE seq = -1;")
    rc, out = verify()
    check(rc == 1 and "BROKEN at entry 6" in out, f"reordered entries: {rc} {out}")
    restore()
    tamper(f"DELETE FROM audit_events WHERE seq >= {n - 1};")
    rc, out = verify()
    check(rc == 1 and "BROKEN" in out, f"the newest entries removed (anchor): {rc} {out}")
    db.close()

    hits = harness.scan_for_phi({"dirgwd.log": gw.log_text(), "audit.xml": text}, manifest)
    for h in hits:
        check(False, h)
    repo.stop()
    print(f"audit trail: {n} entries, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
