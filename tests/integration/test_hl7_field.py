#!/usr/bin/env python3
"""Reports as interface engines in the field send them, over raw MLLP bytes, into a real Orthanc.

Each case was found by sending field-style messages to dirgwd (a review of the HL7 door); each
lost or mangled a report while the sender was told it was taken, or stalled its queue.

1. Framing on one connection: an LF before the first frame, frames ending 0x1C 0x0D 0x0A, a space
   between two frames, an empty frame (a keep-alive), a UTF-8 byte order mark and a CR LF before
   MSH. Every message is answered AA with its own control ID in MSA-2, in order, on the same
   connection, and the empty frame gets no answer.
2. Text declared ISO 8859-1 that is Windows-1252 (word-processor quotes and dashes): the SR holds
   the quotes and the dash, no C1 control code. OBR-32 written as components (ID^family^given):
   the SR names its author and is VERIFIED by them.
3. An addendum after the final (OBR-25 A): a second version of the report, which references the
   first (Predecessor Documents Sequence). A correction whose PID-3 gained the health number
   (registration added it) is still the same report's second version.
4. A report refused (its accession belongs to another patient) is refused again when the engine
   sends the same bytes again (AE both times, never AE then AA).
5. A control ID used again for another report (an engine's counter reset): that report is taken
   and reaches its study. The addendum's content sent again under a new control ID (an engine's
   "resend result") adds no third version. A study whose first image had no accession (the next
   one has it) is found by its report. Exams dictated together (one ORU, an OBR each) give each
   study its own report. Of two studies of the patient with the same accession, the one ZDS-1
   names gets the report.
6. A message with MSH-11 T (an interface test sent to the production port) is answered AR and
   not filed (ingest.hl7.processing_ids: [P], the default). A cancelled order (OBR-25 X) is
   answered AA and not filed: an AE would stall the engine's queue behind it.
7. No patient value or report text in dirgwd's log.
"""

import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SR = "1.2.840.10008.5.1.4.1.1.88.11"
VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"


def oru(control_id, patient, status, text, charset="", author="Gagnon&Gagnon&Helene",
        accession=None, health_number=None):
    pid3 = f"{patient['patient_id']}^^^{patient['issuer']}^MR"
    if health_number:  # registration added the health number, first
        pid3 = f"{health_number}^^^ON^JHN~" + pid3
    acc = accession or patient["accession"]
    segs = [
        f"MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261205091500||ORU^R01|{control_id}|P|2.5||||||{charset}",
        f"PID|1||{pid3}||SYNTHETIC^PATIENT",
        f"OBR|1|PL{acc}|{acc}|CTHEAD^CT Head|||20261205090000" + "|" * 18 + status
        + "|" * 7 + author,
    ]
    body = ("\r".join(segs) + "\r").encode("latin-1")
    return body + b"OBX|1|TX|IMP^Impression||" + text + b"||||||" + status.encode() + b"\r"


def frame(payload, end=FS + CR):
    return VT + payload + end


class Connection:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def acks(self, n, timeout=20):
        """The next n answers: [(MSA-1, MSA-2, MSA-3)]."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            while VT in self.buf and FS in self.buf[self.buf.index(VT):]:
                start = self.buf.index(VT)
                end = self.buf.index(FS, start)
                msg = self.buf[start + 1:end].decode("latin-1")
                self.buf = self.buf[end + 1:].lstrip(b"\r")
                msa = next((s.split("|") for s in msg.split("\r") if s.startswith("MSA|")), [])
                out.append(tuple((msa + ["", "", "", ""])[1:4]))
            if len(out) >= n:
                break
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        return out

    def close(self):
        self.sock.close()


def send_one(port, payload):
    c = Connection(port)
    c.send(frame(payload))
    a = c.acks(1)
    c.close()
    return a[0] if a else ("no answer", "", "")


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-hl7field-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    small = ["--rows", "32", "--cols", "32"]
    studies = {}
    for k, name in enumerate("abcd"):
        uid, files = harness.synth(args.build_dir, os.path.join(work, name), "CT", 1, seed=70 + k,
                                   patient_index=10 + k, manifest=manifest, extra=small)
        studies[name] = (uid, files)
    pat = {p["study_uid"]: p for p in (json.loads(l) for l in open(manifest))}
    p = {name: pat[uid] for name, (uid, _) in studies.items()}

    repo = harness.Orthanc(work).start()
    hl7_port = harness.free_port()
    gw = harness.Gateway(
        args.build_dir, work, f"http://127.0.0.1:{repo.http_port}/dicom-web", stable_age="1s",
        ingest_yaml=(f"  hl7:\n    enabled: true\n    bind: 127.0.0.1\n    port: {hl7_port}\n"
                     "    reports: { enabled: true, accession_field: filler, preliminary: hold,"
                     " uid_root: \"1.2.826.0.1.3680043.10.1011.9\" }\n")).start()
    for name, (uid, files) in studies.items():
        rc, _ = harness.storescu(gw.port, files)
        check(rc == 0, f"storescu {name}")
    harness.wait_for("the images in the repository", lambda: repo.count_instances() == 4, 60, 0.3)

    def srs(name):
        uid = studies[name][0]
        try:
            found = repo.get(f"/dicom-web/studies/{uid}/instances"
                             "?includefield=0020000E&includefield=00080016") or []
        except Exception:
            return []
        out = []
        for i in found:
            if i.get("00080016", {}).get("Value", [""])[0] != SR:
                continue
            series, sop = i["0020000E"]["Value"][0], i["00080018"]["Value"][0]
            out.append(repo.get(f"/dicom-web/studies/{uid}/series/{series}/instances/{sop}"
                                "/metadata")[0])
        return sorted(out, key=lambda ds: value(ds, "00200013") or 0)

    value, text = harness.json_value, harness.sr_text

    # --- 1. Framing variants on one connection.
    cp1252 = b"Patient\x92s lungs clear \x96 no \x93acute\x94 finding."
    m1 = oru("F1", p["a"], "F", b"No acute finding.")
    m2 = oru("F2", p["b"], "F", b"Normal study.")
    m3 = oru("F3", p["c"], "F", cp1252, charset="8859/1", author="12345^Radiologue^Helene^^^Dr")
    c = Connection(hl7_port)
    c.send(b"\n" + frame(m1, FS + CR + b"\n") + b" " + frame(m2, FS + CR + b"\n"))
    c.send(frame(b"") + frame(b"\xef\xbb\xbf\r\n" + m3))
    answers = c.acks(4, timeout=10)
    check([(a[0], a[1]) for a in answers] == [("AA", "F1"), ("AA", "F2"), ("AA", "F3")],
          f"three AA, each with its control ID, and no answer to the empty frame: {answers}")
    c.send(frame(oru("F4", p["d"], "P", b"draft")))  # the connection is still open
    check([a[:2] for a in c.acks(1)] == [("AA", "F4")], "the connection is still served")
    c.close()
    log_text = gw.log_text()
    check("bytes outside an MLLP frame dropped" in log_text, "the stray bytes are logged")
    check("MLLP framing error" not in log_text, "no framing error")

    # --- 2. Windows-1252 under 8859/1; the author in components.
    harness.wait_for("C's report", lambda: len(srs("c")) == 1, 30, 0.3)
    sr = srs("c")[0]
    t = text(sr)
    check("Patient\u2019s lungs clear \u2013 no \u201cacute\u201d finding." in t,
          f"the SR holds the quotes and the dash: {t!r}")
    check(not any(0x80 <= ord(ch) < 0xA0 for ch in t), "no C1 control code in the SR")
    observer = sr.get("0040A073", {}).get("Value", [{}])[0]
    check(value(observer, "0040A075") == "Radiologue^Helene" and
          value(sr, "0040A493") == "VERIFIED",
          f"the author in components verifies the SR: {observer} {value(sr, '0040A493')}")

    # --- 3. An addendum after the final: a second version.
    harness.wait_for("A's report", lambda: len(srs("a")) == 1, 30, 0.3)
    first_sop = value(srs("a")[0], "00080018")
    addendum = oru("F5", p["a"], "A", b"ADDENDUM: 4 mm nodule, follow-up CT in 12 months.")
    check(send_one(hl7_port, addendum)[0] == "AA", "the addendum is acknowledged AA")
    harness.wait_for("A's addendum", lambda: len(srs("a")) == 2, 30, 0.3)
    second = srs("a")[1]
    pred = second.get("0040A360", {}).get("Value", [{}])[0]
    refs = json.dumps(pred)
    check("ADDENDUM: 4 mm nodule" in text(second) and first_sop in refs,
          f"the addendum is the second version, referencing the first: {text(second)!r}")

    # --- 3b. A correction whose PID-3 gained the patient's health number (which sorts before the
    # MRN): still the same report, its second version.
    harness.wait_for("B's report", lambda: len(srs("b")) == 1, 30, 0.3)
    b_first = value(srs("b")[0], "00080018")
    correction = oru("F9", p["b"], "C", b"Corrected: small nodule.", health_number="1234567897")
    check(send_one(hl7_port, correction)[0] == "AA", "the correction is acknowledged AA")
    harness.wait_for("B's correction", lambda: len(srs("b")) == 2, 30, 0.3)
    b_second = srs("b")[1]
    check(value(b_second, "00200013") == 2 and b_first in json.dumps(b_second.get("0040A360")),
          f"the correction is version 2 of the same report: {value(b_second, '00200013')}")

    # --- 4. Refused, then the same bytes again: refused again.
    other = dict(p["b"], patient_id="SOMEONEELSE")
    wrong = oru("F6", other, "F", b"x")
    first_answer, again = send_one(hl7_port, wrong), send_one(hl7_port, wrong)
    check(first_answer[0] == "AE" and again[0] == "AE" and again[2] == first_answer[2],
          f"a refused report is refused again when sent again: {first_answer} {again}")

    # dirgw reports lists it by its control ID, with the reason; no patient value.
    rc, out, err = gw.run_cli("reports", "--state", "refused")
    check(rc == 0 and "RIS/LGH/F6" in out and "belongs to another patient" in out and
          other["patient_id"] not in out and other["accession"] not in out,
          f"dirgw reports shows the refused report: {out} {err}")

    # --- 5. A control ID used again for another report; a version's content sent again.
    reused = oru("F2", p["d"], "F", b"Final: small effusion.")
    check(send_one(hl7_port, reused)[0] == "AA", "a reused control ID with another report: AA")
    harness.wait_for("D's final report", lambda: any(
        "small effusion" in text(ds) for ds in srs("d")), 30, 0.3)
    resent = oru("F7", p["a"], "A", b"ADDENDUM: 4 mm nodule, follow-up CT in 12 months.")
    check(send_one(hl7_port, resent)[0] == "AA", "the addendum resent under a new control ID: AA")
    time.sleep(3)
    check(len(srs("a")) == 2, f"no third version of A's report: {len(srs('a'))}")
    check("control ID received before with another report" in gw.log_text(),
          "the reused control ID is logged")

    # --- 5b. A study whose first image had no accession (the modality started before the worklist
    # was picked); the next image has it: the report finds the study.
    e_uid, e_files = harness.synth(args.build_dir, os.path.join(work, "e"), "CT", 2, seed=80,
                                   patient_index=20, manifest=manifest, extra=small)
    pe = next(json.loads(l) for l in open(manifest) if json.loads(l)["study_uid"] == e_uid)
    subprocess.run(["dcmodify", "-nb", "-m", "(0008,0050)=", e_files[0]], check=True,
                   capture_output=True)
    for f in e_files:  # one after the other: the first is indexed before the second arrives
        check(harness.storescu(gw.port, [f])[0] == 0, "storescu E")
        time.sleep(1.5)
    studies["e"] = (e_uid, e_files)
    check(send_one(hl7_port, oru("F11", pe, "F", b"Late accession: normal."))[0] == "AA",
          "the report for the late-accession study: AA")
    # (The study itself is quarantined for the repository: its first image lacks the accession the
    # profile requires. The report is an object of the study all the same.)
    harness.wait_for("E's report in the catalog", lambda: any(
        i.get("sop_class_uid") == SR for i in gw.study(e_uid).get("instance_list", [])), 30, 0.3)

    # --- 5c. Exams dictated together (linked exams): one ORU, an OBR per exam; each study gets its
    # own report, not both texts in the first.
    linked = {}
    for name, seed in (("f", 81), ("g", 82)):
        uid, files = harness.synth(args.build_dir, os.path.join(work, name), "CT", 1, seed=seed,
                                   patient_index=21, manifest=manifest, extra=small)
        studies[name] = (uid, files)
        linked[name] = next(json.loads(l) for l in open(manifest)
                            if json.loads(l)["study_uid"] == uid)
        if name == "g":  # the same patient as f
            for key, tag in (("patient_id", "(0010,0020)"), ("patient_name", "(0010,0010)"),
                             ("issuer", "(0010,0021)")):
                linked["g"][key] = linked["f"][key]
                subprocess.run(["dcmodify", "-nb", "-m", f"{tag}={linked['f'][key]}"] + files,
                               check=True, capture_output=True)
        check(harness.storescu(gw.port, files)[0] == 0, f"storescu {name}")
    check(linked["f"]["accession"] != linked["g"]["accession"], "two accessions")
    chest = oru("F12", linked["f"], "F", b"CT chest: clear.")
    abdomen = oru("F12", linked["g"], "F", b"CT abdomen: normal.")
    both = chest + b"\r".join(l for l in abdomen.split(b"\r") if l.startswith((b"OBR", b"OBX")))
    check(send_one(hl7_port, both)[0] == "AA", "the linked exams' report: AA")
    harness.wait_for("both linked reports", lambda: len(srs("f")) == 1 and len(srs("g")) == 1,
                     30, 0.3)
    check(text(srs("f")[0]) == "CT chest: clear." and text(srs("g")[0]) == "CT abdomen: normal.",
          f"each exam has its own text: {text(srs('f')[0])!r} {text(srs('g')[0])!r}")

    # --- 5d. Two studies of the patient with the same accession: the report names its study in
    # ZDS-1 (IHE Radiology) and goes there, rather than being refused as ambiguous.
    same = {}
    for name, seed in (("h", 83), ("i", 84)):
        uid, files = harness.synth(args.build_dir, os.path.join(work, name), "CT", 1, seed=seed,
                                   patient_index=22, manifest=manifest, extra=small)
        studies[name] = (uid, files)
        same[name] = next(json.loads(l) for l in open(manifest) if json.loads(l)["study_uid"] == uid)
        if name == "i":
            for key, tag in (("patient_id", "(0010,0020)"), ("patient_name", "(0010,0010)"),
                             ("issuer", "(0010,0021)"), ("accession", "(0008,0050)")):
                subprocess.run(["dcmodify", "-nb", "-m", f"{tag}={same['h'][key]}"] + files,
                               check=True, capture_output=True)
        check(harness.storescu(gw.port, files)[0] == 0, f"storescu {name}")
    named = oru("F13", same["h"], "F", b"Named study: normal.") + \
        f"ZDS|{studies['i'][0]}^RIS^Application^DICOM\r".encode()
    check(send_one(hl7_port, named)[0] == "AA", "the report naming its study: AA")
    harness.wait_for("the named study's report", lambda: len(srs("i")) == 1, 30, 0.3)
    check(not srs("h"), "the other study of the same accession has no report")

    # --- 6. An interface test on the production port (MSH-11 T): refused, not filed.
    test_msg = oru("F8", p["d"], "F", b"TEST MESSAGE - IGNORE").replace(b"|P|2.5|", b"|T|2.5|")
    answer = send_one(hl7_port, test_msg)
    check(answer[0] == "AR" and "processing ID T" in answer[2],
          f"a test message is refused AR: {answer}")
    time.sleep(2)
    check(not any("TEST MESSAGE" in text(ds) for ds in srs("d")), "the test message is not filed")

    # A cancelled order (OBR-25 X) carries no report: AA (an AE would stall the engine's queue),
    # nothing filed.
    cancel = oru("F10", p["d"], "X", b"Order cancelled.")
    check(send_one(hl7_port, cancel)[0] == "AA", "a cancellation is acknowledged AA")
    time.sleep(2)
    check(not any("Order cancelled" in text(ds) for ds in srs("d")), "the cancellation is not filed")
    check("HL7 report ignored" in gw.log_text(), "the log says it was ignored")

    # --- 7. Nothing of the patients or the reports in the log.
    gw.stop()
    repo.stop()
    log_text = gw.log_text()
    hits = harness.scan_for_phi({"dirgwd.log": log_text}, manifest)
    check(not hits, f"patient values in the log: {hits}")
    for secret in ("nodule", "effusion", "Radiologue", "acute"):
        check(secret not in log_text, f"report text {secret!r} is not in the log")
    return check.finish("hl7 field: OK")


if __name__ == "__main__":
    sys.exit(main())
