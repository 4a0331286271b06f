#!/usr/bin/env python3
"""Consent, validation and quarantine through the CLI against a real Orthanc.

- opt-in: a study waits HELD ("no consent recorded") and arrives after `dirgw consent grant`;
- a withdrawal recorded while a large study is being sent slowly stops the rest: Orthanc holds
  only what was sent before it (at most the batches that were on the wire, one per request in
  flight);
- a study with an invalid health number is quarantined with every reason, is corrected at the
  PACS and sent again, and arrives after `dirgw quarantine release`;
- `dirgw consent import` reports rejected rows with their line numbers;
- the site's adjustments to the validation profile (a modality allowed, a finding accepted) let a
  study through that the profile alone would quarantine;
- no patient value appears in dirgwd's log."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from chaos_proxy import ChaosProxy  # noqa: E402
from harness import log  # noqa: E402

LANES = harness.DEFAULT_STOW_LANES


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-consent-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    failures = check.failures

    small = ["--rows", "64", "--cols", "64"]
    a_uid, a_files = harness.synth(args.build_dir, os.path.join(work, "a"), "CT", 3, seed=31,
                                   patient_index=1, manifest=manifest, extra=small)
    b_uid, b_files = harness.synth(args.build_dir, os.path.join(work, "b"), "CT", 60, seed=32,
                                   patient_index=2, manifest=manifest)
    c_uid, c_files = harness.synth(args.build_dir, os.path.join(work, "c"), "MR", 2, seed=33,
                                   patient_index=3, manifest=manifest,
                                   extra=small + ["--health-number", "1234567890"])
    patients = [json.loads(l) for l in open(manifest)]
    hn = {p["study_uid"]: p["health_number"] for p in patients}

    repo = harness.Orthanc(work).start()
    proxy = ChaosProxy(repo.http_port)
    notices = start_notification_endpoint()
    hl7_port = harness.free_port()
    gw = harness.Gateway(args.build_dir, work, f"http://127.0.0.1:{proxy.port}/dicom-web",
                         stable_age="1s", batch_max=5, consent="opt-in",
                         policy_yaml="  coercion: { fill_health_number_from_mrn: true, "
                                     "set: { \"(0008,1010)\": GWSTAMP } }\n"
                                     "  validation: { allow_modalities: [OP], "
                                     "accept_findings: [charset.unknown] }\n",
                         ingest_yaml=f"  hl7: {{ enabled: true, bind: 127.0.0.1, port: {hl7_port} }}\n",
                         dest_yaml=f"    withdrawal_notify_url: http://127.0.0.1:{notices.port}/withdrawals\n").start()

    def cli(*a):
        return gw.run_cli(*a)

    def study(uid):
        rc, out, err = cli("study", uid, "--json")
        return json.loads(out) if rc == 0 else {}

    def dest_state(uid):
        s = study(uid)
        return s["destinations"][0]["state"] if s.get("destinations") else None

    # 1. opt-in: HELD until a grant.
    rc, out = harness.storescu(gw.port, a_files)
    check(rc == 0, "storescu A")
    harness.wait_for("A to be HELD", lambda: dest_state(a_uid) == "HELD", 30, 0.3)
    check(study(a_uid)["destinations"][0]["reason"] == "no consent recorded", "A held for want of consent")
    time.sleep(1.5)
    check(repo.count_instances() == 0, "nothing may leave without consent in opt-in mode")
    rc, out, err = cli("consent", "grant", "hn:" + hn[a_uid])
    check(rc == 0 and "1 released" in out, f"grant: {rc} {out} {err}")
    harness.wait_for("A to be sent after the grant", lambda: dest_state(a_uid) == "SENT", 30, 0.3)
    rc, out, err = cli("consent", "show", "hn:" + hn[a_uid])
    check(rc == 0 and "granted" in out and "grant" in out, f"consent show: {out} {err}")
    rc, out, err = cli("consent", "grant", "hn:1234567890")
    check(rc == 1 and "not a valid Ontario health number" in err, f"grant of an invalid number: {rc} {err}")

    # 2. Withdrawal in the middle of a large, slow send.
    rc, out, err = cli("consent", "grant", "hn:" + hn[b_uid])
    proxy.rate = 1.5 * 2**20  # ~0.5 MB instances: about 3 per second
    rc, out = harness.storescu(gw.port, b_files)
    check(rc == 0, "storescu B")
    harness.wait_for("part of B to arrive", lambda: repo.count_instances() >= 3 + 10, 120, 0.2)
    rc, out, err = cli("consent", "withdraw", "hn:" + hn[b_uid])
    at_withdrawal = repo.count_instances() - 3
    check(rc == 0 and "1 stud(ies) withdrawn" in out, f"withdraw: {rc} {out} {err}")
    time.sleep(6)
    b_in_repo = repo.count_instances() - 3
    # The destination's default concurrency (2 for STOW-RS): one batch of 5 on the wire per lane.
    on_wire = 5 * LANES
    log(f"B: {at_withdrawal} instances in Orthanc at the withdrawal, {b_in_repo} after; "
        f"batch 5, {LANES} requests in flight")
    check(dest_state(b_uid) == "WITHDRAWN", f"B should be WITHDRAWN: {dest_state(b_uid)}")
    check(b_in_repo <= at_withdrawal + on_wire,
          f"after withdrawal at most the batches on the wire may arrive: {at_withdrawal} -> "
          f"{b_in_repo}")
    check(b_in_repo < 60, "the withdrawal did not stop the rest of B")
    harness.wait_for("the withdrawal notification", lambda: notices.bodies, 30, 0.3)
    note = notices.bodies[0]
    check(note["event"] == "consent-withdrawn" and note["study_instance_uids"] == [b_uid],
          f"withdrawal notification names the study the repository holds: {note}")
    st = gw.status()
    check(st["destinations"][0]["pending_instances"] == 0, "withdrawn instances must not stay pending")
    proxy.rate = 0

    # 3. Invalid health number: quarantined with its reasons; corrected, resent, released.
    rc, out, err = cli("consent", "import", write_csv(work))
    check(rc == 0 and "imported 1 row(s); 3 rejected" in out and "line 3:" in out and "line 4:" in out
          and "line 5:" in out, f"consent import report: {out} {err}")
    rc, out = harness.storescu(gw.port, c_files)
    harness.wait_for("C to be QUARANTINED", lambda: dest_state(c_uid) == "QUARANTINED", 30, 0.3)
    rc, out, err = cli("quarantine", "list")
    check(rc == 0 and c_uid in out, f"quarantine list: {out}")
    rc, out, err = cli("quarantine", "show", c_uid, "--json")
    codes = [f["code"] for f in json.loads(out)["findings"]]
    check(len(codes) >= 2 and all("health_number" in c for c in codes), f"findings for both instances: {codes}")
    good_hn = "1234567897"
    for f in c_files:
        subprocess.run(["dcmodify", "-nb", "-m", f"(0010,1002)[0].(0010,0020)={good_hn}", f], check=True)
    rc, out, err = cli("consent", "grant", "hn:" + good_hn)
    rc, out = harness.storescu(gw.port, c_files)
    check(rc == 0, "resend of the corrected C")
    # The corrected instances re-open the quarantined study and policy judges it again (issue 17:
    # late instances of a quarantined study are validated): no release is needed, and a release
    # while it is RECEIVING again is refused with the reason.
    rc, out, err = cli("quarantine", "release", c_uid)
    check(rc == 0 or "cannot become STABLE" in err, f"quarantine release: {rc} {out} {err}")
    harness.wait_for("C to be sent after correction", lambda: dest_state(c_uid) == "SENT", 30, 0.3)
    for f in c_files:
        oid = repo.instance_id(harness.sop_instance_uid(f))
        tags = repo.get(f"/instances/{oid}/tags?simplify") if oid else None
        other = (tags or {}).get("OtherPatientIDsSequence") or [{}]
        check(other[0].get("PatientID") == good_hn, "Orthanc must hold the corrected instance")
    rc, out, err = cli("quarantine", "delete", c_uid)
    check(rc != 0, "delete without confirmation must be refused")

    # 4. HL7 v2 over MLLP: an ADT with the consent flag releases a held study; each message is
    #    acknowledged; a withdrawal by HL7 shows in the registry; what we do not handle is refused.
    d_uid, d_files = harness.synth(args.build_dir, os.path.join(work, "d"), "CR", 1, seed=34,
                                   patient_index=5, manifest=manifest, extra=small)
    d = [json.loads(l) for l in open(manifest)][-1]
    rc, out = harness.storescu(gw.port, d_files)
    harness.wait_for("D to be HELD", lambda: dest_state(d_uid) == "HELD", 30, 0.3)
    pid3 = f"{d['health_number']}^^^ON^JHN~{d['patient_id']}^^^LGH-MRN^MR"
    ack = mllp(hl7_port, adt("A04", "MSG0001", pid3, "N"))
    check("MSA|AA|MSG0001" in ack, f"ADT A04 with consent: ACK {ack!r}")
    harness.wait_for("D to be sent after the HL7 grant", lambda: dest_state(d_uid) == "SENT", 30, 0.3)
    ack = mllp(hl7_port, adt("A08", "MSG0002", pid3, "Y"))
    check("MSA|AA|MSG0002" in ack, f"ADT A08 withdrawing: ACK {ack!r}")
    rc, out, err = cli("consent", "show", "hn:" + d["health_number"], "--json")
    shown = json.loads(out)
    check(shown["state"]["repository"] == "withdrawn" and shown["history"][-1]["source"] == "hl7",
          f"consent after the HL7 withdrawal: {shown.get('state')}")
    ack = mllp(hl7_port, adt("A08", "MSG0003", "1234567890^^^ON^JHN", "Y"))
    check("MSA|AE|MSG0003" in ack, f"an invalid health number gets AE: {ack!r}")
    ack = mllp(hl7_port, "MSH|^~\\&|LAB|LGH|DIRGW|LGH|20261128101500||ORU^R01|MSG0004|P|2.5\rPID|1||X^^^LGH-MRN^MR\r")
    check("MSA|AR|MSG0004" in ack, f"an unhandled message type gets AR: {ack!r}")
    # Broken MLLP framing: bytes before the start block, a frame that never ends, garbage.
    import socket
    for raw in (b"junk before the frame\x0bMSH|^~\\&|X|Y|Z|W|20261128||ADT^A08|M5|P|2.5\r\x1c\x0d",
                b"\x0bMSH|^~\\&|X|Y|Z|W|20261128||ADT^A08|M6|P|2.5\r" + b"A" * 2_000_000,
                bytes(range(256)) * 8):
        with socket.create_connection(("127.0.0.1", hl7_port), timeout=10) as sock:
            try:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
                reply = sock.recv(65536)
            except OSError:
                reply = b""
        check(b"MSA|AA" not in reply, f"broken framing must not be acknowledged as applied: {reply[:80]!r}")
    ack = mllp(hl7_port, adt("A08", "MSG0007", pid3, "N"))
    check("MSA|AA|MSG0007" in ack, f"the listener still works after broken framing: {ack!r}")
    # A sender that ends its frame with the end block alone (no CR) and waits for its ACK.
    with socket.create_connection(("127.0.0.1", hl7_port), timeout=10) as sock:
        sock.sendall(b"\x0b" + adt("A08", "MSG0008", pid3, "N").encode() + b"\x1c")
        reply = b""
        try:
            while not reply.endswith(b"\x1c\x0d"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except OSError:  # no answer within the socket's 10 s
            pass
    check(b"MSA|AA|MSG0008" in reply, f"a frame without its final CR is answered: {reply[:80]!r}")

    # 5. Coercion: a study without a health number gets it from the MRN table (CSV), in a
    #    derived copy with the replaced values in Original Attributes Sequence.
    e_uid, e_files = harness.synth(args.build_dir, os.path.join(work, "e"), "CT", 2, seed=35,
                                   patient_index=6, manifest=manifest,
                                   extra=small + ["--health-number", "none"])
    e = [json.loads(l) for l in open(manifest)][-1]
    e_hn = "2345678904"
    mrn_csv = os.path.join(work, "mrn.csv")
    with open(mrn_csv, "w") as f:
        f.write("mrn_issuer,mrn,health_number\n")
        f.write(f"{e['issuer']},{e['patient_id']},{e_hn}\n")
        f.write("LGH-MRN,MRN0000001,1234567890\n")
    rc, out, err = cli("mrn", "import", mrn_csv)
    check(rc == 0 and "imported 1 row(s); 1 rejected" in out and "line 3:" in out, f"mrn import: {out} {err}")
    rc, out, err = cli("consent", "grant", "hn:" + e_hn)
    rc, out = harness.storescu(gw.port, e_files)
    harness.wait_for("E to be sent with the health number filled in",
                     lambda: dest_state(e_uid) == "SENT", 30, 0.3)
    for f in e_files:
        oid = repo.instance_id(harness.sop_instance_uid(f))
        tags = repo.get(f"/instances/{oid}/tags?simplify") if oid else {}
        other = (tags or {}).get("OtherPatientIDsSequence") or [{}]
        check(other[0].get("PatientID") == e_hn, f"coerced health number in the repository: {other}")
        check("OriginalAttributesSequence" in (tags or {}), "Original Attributes Sequence present")
        check((tags or {}).get("StationName") == "GWSTAMP", "the configured attribute is stamped")

    # 6. The site's adjustments to the profile (policy.validation): an ophthalmic photograph (OP,
    #    not on ontario-dir's list) from a device that writes an undefined character set term is
    #    forwarded, and the accepted finding is logged; without them it would be quarantined.
    f_uid, f_files = harness.synth(args.build_dir, os.path.join(work, "f"), "CT", 2, seed=36,
                                   patient_index=7, manifest=manifest, extra=small)
    f_hn = [json.loads(l) for l in open(manifest)][-1]["health_number"]
    for f in f_files:
        subprocess.run(["dcmodify", "-nb", "-m", "(0008,0060)=OP", "-i", "(0008,0005)=ISO_IR 999",
                        f], check=True)
    rc, out, err = cli("consent", "grant", "hn:" + f_hn)
    rc, out = harness.storescu(gw.port, f_files)
    check(rc == 0, "storescu F")
    harness.wait_for("F (OP, ISO_IR 999) to be sent", lambda: dest_state(f_uid) in ("SENT", "QUARANTINED"),
                     30, 0.3)
    check(dest_state(f_uid) == "SENT", f"F under the site's adjustments: {study(f_uid)}")
    for f in f_files:
        check(repo.instance_id(harness.sop_instance_uid(f)) is not None, "F's instance in Orthanc")
    check(f"study_uid={f_uid}" in gw.log_text() and "accepted_findings=charset.unknown:2" in gw.log_text(),
          "the accepted findings are logged with the decision")

    # A restart with coercion on finds every object where it should be (coerced copies live in
    # spool/derived/ and were once all reported missing at each start).
    check(gw.stop() == 0, "dirgwd did not stop cleanly before the restart")
    gw.start()
    startup = gw.status()["startup"]
    check(startup["missing"] == 0 and startup["quarantined"] == 0,
          f"restart with coerced objects: {startup}")
    check(dest_state(e_uid) == "SENT", "a coerced study stays SENT across a restart")

    text = gw.log_text()
    hits = harness.scan_for_phi({"dirgwd.log": text}, manifest)
    for h in hits:
        check(False, h)
    check(good_hn not in text, "a health number typed at the CLI appears in the log")
    check(gw.stop() == 0, "dirgwd did not stop cleanly")
    repo.stop()
    proxy.close()
    print(f"consent and policy: {len(failures)} failures")
    return 1 if failures else 0


def start_notification_endpoint():
    """A stand-in for the repository's withdrawal endpoint: records every JSON POST."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.server.bodies.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.bodies = []
    server.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def adt(trigger, control_id, pid3, flag):
    return (f"MSH|^~\\&|ADMIT|LGH|DIRGW|LGH|20261128101500||ADT^{trigger}|{control_id}|P|2.5\r"
            f"EVN|{trigger}|20261128101500\r"
            f"PID|1||{pid3}||Synthfield^Test\r"
            f"PD1||||||||||||{flag}\r")


def mllp(port, message, timeout=10):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"\x0b" + message.encode() + b"\x1c\x0d")
        data = b""
        while not data.endswith(b"\x1c\x0d"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.strip(b"\x0b\x1c\x0d").decode(errors="replace")


def write_csv(work):
    path = os.path.join(work, "consent.csv")
    with open(path, "w") as f:
        f.write("health_number,mrn_issuer,mrn,decision\n")
        f.write("9876543217,LGH-MRN,MRN7654321,grant\n")  # line 2: fine
        f.write("1234567890,,,grant\n")       # line 3: bad check digit
        f.write(",LGH-MRN,,grant\n")          # line 4: no identifier
        f.write("9876543217,,,maybe\n")       # line 5: bad decision
    return path


if __name__ == "__main__":
    sys.exit(main())
