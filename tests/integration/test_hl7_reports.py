#!/usr/bin/env python3
"""Reports over HL7 v2 (ORU^R01) into their study, checked in a real Orthanc through DICOMweb.

- a final ORU sent with mllp_send (python3-hl7) for a study already sent becomes a Basic Text SR
  of that study: the text (UTF-8 accents), the patient and study identifiers as in the images;
- a report that arrives before its images (ISO 8859-1 text, MSH-18 8859/1, with a \\X..\\
  escape) is acknowledged AA, waits, and goes once the images arrive, accents intact;
- a corrected report (OBR-25 C) becomes a second version: a new SOP Instance UID that
  references the first in Predecessor Documents Sequence;
- a PDF (OBX ED Base64) becomes an Encapsulated PDF with the same bytes;
- the same message sent again adds nothing; a report whose accession belongs to another
  patient is answered AE; a preliminary is held (preliminary: hold);
- a PDF report larger than ingest.hl7.max_message_size is answered AR naming the limit;
- beyond max_waiting reports waiting for their images, the oldest is expired (kept, counted);
  reports answered AE/AR are counted in dirgw status and sources;
- no patient value nor report text appears in dirgwd's log."""

import base64
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

SR = "1.2.840.10008.5.1.4.1.1.88.11"
PDF = "1.2.840.10008.5.1.4.1.1.104.1"
TEXT_UTF8 = "Pas d'épanchement pleural. Cœur de taille normale."
TEXT_LATIN1 = "Pas de pneumothorax à droite, \\XE9\\lève."
TEXT_LATIN1_DECODED = "Pas de pneumothorax à droite, élève."
TEXT_CORRECTED = "Rectificatif : nodule de 4 mm au lobe supérieur."


def oru(control_id, patient, status, obx, charset="", encoding="utf-8"):
    pid3 = f"{patient['patient_id']}^^^{patient['issuer']}^MR"
    segs = [
        f"MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261203091500||ORU^R01|{control_id}|P|2.5||||||{charset}",
        f"PID|1||{pid3}||SYNTHETIC^PATIENT",
        f"OBR|1|PL{control_id}|{patient['accession']}|CTHEAD^CT Head|||20261203090000"
        + "|" * 18 + status + "|" * 7 + "Gagnon&Gagnon&Hélène",
        obx,
    ]
    return ("\r".join(segs) + "\r").encode(encoding) + b"\x1c"


def mllp_send(port, message, whole=False):
    """python3-hl7's mllp_send, as an interface engine would send. Returns the ACK's MSA-1 (the
    whole answer when `whole`)."""
    with tempfile.NamedTemporaryFile(suffix=".hl7", delete=False) as f:
        f.write(message)
    try:
        p = subprocess.run(["mllp_send", "--port", str(port), "--file", f.name, "127.0.0.1"],
                           capture_output=True, timeout=30)
    finally:
        os.unlink(f.name)
    out = p.stdout.decode("latin-1")
    if whole:
        return out
    for seg in out.replace("\n", "\r").split("\r"):
        if seg.startswith("MSA|"):
            return seg.split("|")[1]
    return f"no ACK ({p.returncode}): {out} {p.stderr.decode('latin-1')}"


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-reports-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    small = ["--rows", "64", "--cols", "64"]
    a_uid, a_files = harness.synth(args.build_dir, os.path.join(work, "a"), "CT", 2, seed=41,
                                   patient_index=1, manifest=manifest, extra=small)
    b_uid, b_files = harness.synth(args.build_dir, os.path.join(work, "b"), "CT", 2, seed=42,
                                   patient_index=2, manifest=manifest, extra=small)
    c_uid, c_files = harness.synth(args.build_dir, os.path.join(work, "c"), "MR", 1, seed=43,
                                   patient_index=3, manifest=manifest, extra=small)
    pat = {p["study_uid"]: p for p in (json.loads(l) for l in open(manifest))}

    repo = harness.Orthanc(work).start()
    hl7_port = harness.free_port()
    gw = harness.Gateway(
        args.build_dir, work, f"http://127.0.0.1:{repo.http_port}/dicom-web", stable_age="1s",
        ingest_yaml=(f"  hl7:\n    enabled: true\n    bind: 127.0.0.1\n    port: {hl7_port}\n"
                     "    reports: { enabled: true, accession_field: filler, preliminary: hold,"
                     " uid_root: \"1.2.826.0.1.3680043.10.1011.9\", max_waiting: 2,"
                     " default_charset: \"8859/1\" }\n")).start()

    def instances(study_uid, sop_class):
        try:
            found = repo.get(f"/dicom-web/studies/{study_uid}/instances"
                             "?includefield=0020000E&includefield=00080016") or []
        except Exception:
            return []
        return [i for i in found if i.get("00080016", {}).get("Value", [""])[0] == sop_class]

    def metadata(study_uid, inst):
        series = inst["0020000E"]["Value"][0]
        sop = inst["00080018"]["Value"][0]
        return repo.get(f"/dicom-web/studies/{study_uid}/series/{series}/instances/{sop}/metadata")[0]

    value, sr_text = harness.json_value, harness.sr_text

    # 1. A final report for a study already sent: a Basic Text SR of that study.
    rc, _ = harness.storescu(gw.port, a_files)
    check(rc == 0, "storescu A")
    harness.wait_for("A's images in the repository", lambda: repo.count_instances() == 2, 30, 0.3)
    pa = pat[a_uid]
    first = oru("R1", pa, "F", f"OBX|1|TX|IMP^Impression||{TEXT_UTF8}||||||F",
                charset="UNICODE UTF-8")
    check(mllp_send(hl7_port, first) == "AA", "the final report is acknowledged AA")
    harness.wait_for("A's report in the repository", lambda: len(instances(a_uid, SR)) == 1, 30, 0.3)
    sr = metadata(a_uid, instances(a_uid, SR)[0])
    check(TEXT_UTF8 in sr_text(sr), f"the SR carries the report's text: {sr_text(sr)!r}")
    check(value(sr, "00100020") == pa["patient_id"], "the SR carries the images' Patient ID")
    check(value(sr, "00080050") == pa["accession"], "the SR carries the Accession Number")
    check(value(sr, "0020000D") == a_uid, "the SR is in the images' study")
    check(value(sr, "00100010") == pa["patient_name"], "the SR carries the images' Patient Name")
    check(value(sr, "0040A493") == "VERIFIED", "a final report is VERIFIED")
    check(value(sr, "00080018").startswith("1.2.826.0.1.3680043.10.1011.9."),
          "the SR's UID is under the configured root")
    first_sop = value(sr, "00080018")

    # 2. The same message again (a lost ACK) adds nothing; another patient's accession is refused.
    check(mllp_send(hl7_port, first) == "AA", "a message sent again is acknowledged AA")
    other = dict(pa, patient_id="SOMEONEELSE")
    check(mllp_send(hl7_port, oru("R9", other, "F", "OBX|1|TX|||x||||||F")) == "AE",
          "a report whose accession belongs to another patient is answered AE")

    # 3. A report before its images, then the images: it goes with them. In ISO 8859-1 without
    #    MSH-18, as some RIS send it: read as the configured default_charset.
    pb = pat[b_uid]
    check(mllp_send(hl7_port, oru("R2", pb, "F", f"OBX|1|TX|||{TEXT_LATIN1}||||||F",
                                  charset="", encoding="latin-1")) == "AA",
          "a report before its images is acknowledged AA")
    check(len(instances(b_uid, SR)) == 0, "the report waits for its images")
    rc, _ = harness.storescu(gw.port, b_files)
    check(rc == 0, "storescu B")
    harness.wait_for("B's report in the repository", lambda: len(instances(b_uid, SR)) == 1, 40, 0.3)
    srb = metadata(b_uid, instances(b_uid, SR)[0])
    check(sr_text(srb) == TEXT_LATIN1_DECODED, f"Latin-1 text arrives intact: {sr_text(srb)!r}")
    check(value(srb, "00100020") == pb["patient_id"], "B's SR carries B's Patient ID")

    # 4. A preliminary is held; a corrected report becomes a second version of A's report.
    check(mllp_send(hl7_port, oru("R3", pa, "P", "OBX|1|TX|||draft||||||P")) == "AA",
          "a preliminary report is acknowledged AA")
    check(mllp_send(hl7_port, oru("R4", pa, "C", f"OBX|1|TX|||{TEXT_CORRECTED}||||||C",
                                  charset="UNICODE UTF-8")) == "AA",
          "the corrected report is acknowledged AA")
    harness.wait_for("A's corrected report", lambda: len(instances(a_uid, SR)) == 2, 30, 0.3)
    versions = [metadata(a_uid, i) for i in instances(a_uid, SR)]
    corrected = [v for v in versions if value(v, "00080018") != first_sop]
    check(len(corrected) == 1 and TEXT_CORRECTED in sr_text(corrected[0]),
          "the corrected version carries the corrected text")
    if corrected:
        pred = corrected[0].get("0040A360", {}).get("Value", [])
        refs = json.dumps(pred)
        check(first_sop in refs, "the corrected version references the first in "
                                 "Predecessor Documents Sequence")
        check(str(value(corrected[0], "00200013")) == "2", "the corrected version is number 2")
    check(all("draft" not in sr_text(v) for v in versions), "the held preliminary did not go")

    # 5. A PDF report: an Encapsulated PDF of study C.
    rc, _ = harness.storescu(gw.port, c_files)
    check(rc == 0, "storescu C")
    pdf = b"%PDF-1.4\n% synthetic report\n1 0 obj\n<< >>\nendobj\ntrailer\n<< >>\n%%EOF\n"
    obx = f"OBX|1|ED|PDF^Report||RIS^AP^PDF^Base64^{base64.b64encode(pdf).decode()}||||||F"
    check(mllp_send(hl7_port, oru("R5", pat[c_uid], "F", obx)) == "AA", "the PDF report: AA")
    harness.wait_for("C's PDF in the repository", lambda: len(instances(c_uid, PDF)) == 1, 40, 0.3)
    meta = metadata(c_uid, instances(c_uid, PDF)[0])
    check(value(meta, "00420012") == "application/pdf", "the PDF's MIME type")
    check(value(meta, "00100020") == pat[c_uid]["patient_id"], "the PDF carries C's Patient ID")
    sop = value(meta, "00080018")
    series = value(meta, "0020000E")
    oid = repo.instance_id(sop)
    if oid:
        doc = repo.get(f"/instances/{oid}/content/0042-0011", raw=True)
        check(doc.rstrip(b"\0") == pdf, "the PDF's bytes are the report's")
    check(series != "", "the PDF has a series")

    # 6. A PDF report larger than the listener's limit (ingest.hl7.max_message_size, 1 MiB by
    # default): AR with the limit named, nothing stored; the next message is taken as usual.
    big = b"%PDF-1.4\n" + os.urandom(900 * 1024) + b"\n%%EOF\n"
    obx = f"OBX|1|ED|PDF^Report||RIS^AP^PDF^Base64^{base64.b64encode(big).decode()}||||||F"
    ack = mllp_send(hl7_port, oru("R7", pat[c_uid], "F", obx), whole=True)
    check("MSA|AR" in ack and "max_message_size" in ack,
          f"a report beyond the message limit is answered AR naming the limit: {ack[:300]!r}")

    # 7. Reports whose images never come: at most max_waiting (2) wait; the oldest is expired,
    # kept with its reason, not dropped.
    for n in (1, 2, 3):
        lost = dict(pat[c_uid], accession=f"NOSUCH{n}")
        check(mllp_send(hl7_port, oru(f"L{n}", lost, "F", "OBX|1|TX|||x||||||F")) == "AA",
              f"report {n} for images that never come: AA")

    rc, out, err = gw.run_cli("sources", "--json")
    src = json.loads(out) if rc == 0 else {}
    counts = {k: v["count"] for k, v in (src.get("hl7_reports") or {}).items()}
    check(counts == {"waiting": 2, "held": 0, "refused": 1, "done": 4, "superseded": 1,
                     "expired": 1}, f"dirgw sources counts the reports by state: {counts} {err}")
    check(src.get("hl7_reports_answered") == {"AE": 1, "AR": 0},
          f"reports answered AE/AR since start: {src.get('hl7_reports_answered')}")
    rc, out, err = gw.run_cli("sources")
    check(rc == 0 and "HL7 reports: waiting 2, held 0, refused 1, done 4, superseded 1, "
          "expired 1" in out, f"dirgw sources prints the reports: {out}")
    st = gw.status()["ingest"].get("hl7_reports", {})
    check(st.get("expired", {}).get("count") == 1 and st.get("answered") == {"AE": 1, "AR": 0},
          f"dirgw status shows expired and refused reports: {st}")
    rc, out, err = gw.run_cli("status")
    check("1 expired; answered AE 1, AR 0" in out, f"dirgw status prints them: {out}")

    total = repo.count_instances()
    check(total == 2 + 2 + 1 + 2 + 1 + 1, f"nothing else arrived (repository holds {total})")
    gw.stop()
    repo.stop()
    text = gw.log_text()
    hits = harness.scan_for_phi({"dirgwd.log": text}, manifest)
    check(not hits, f"patient values in the log: {hits}")
    for secret in ("épanchement", "pneumothorax", "Rectificatif", "Gagnon", "draft"):
        check(secret not in text, f"report text {secret!r} is not in the log")
    print(f"hl7 reports: {len(check.failures)} failures")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
