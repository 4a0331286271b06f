#!/usr/bin/env python3
"""Issue 17's leftovers (items 3, 5 and 8), with real parts: two dirgwd, DCMTK's storescu and
dcmconv, a real Orthanc with its DICOMweb plugin.

- Item 5: an object whose SOP Class and SOP Instance UIDs are encoded with VR UN (as some RT
  exporters write them) is accepted. DCMTK's senders cannot send one (storescu: "No SOP Class or
  Instance UID in file"; dcmsend puts "31"/"32", the first byte of the UN value's hex rendering,
  in the command), so it takes the way such a file really arrives: dirgwd A takes it from an
  export folder and forwards it with its `type: dimse` destination (`un_elements: send`), which
  sends the stored dataset byte for byte with the meta header's UIDs, to dirgwd B's C-STORE SCP.
  B accepts it (before the fix: refused, "differs from the meta header's", sop_instance_uid=31 in
  the log). B's STOW-RS to Orthanc then goes with the UIDs decoded as UI (`un_elements: decode`,
  the default; test_door_final.py checks it reaches VERIFIED).
- Item 8: while B is down, A's study is never shown SENDING when nothing of it is on the wire
  (RETRY_WAIT instead, read in one consistent catalog snapshot); after B comes up and A succeeds,
  `dirgw status` marks the last error as old (last_error_cleared, "(old: ...)").
- Item 3: B accepts Explicit VR Big Endian (storescu -xb, a file made with dcmconv +tb) and has two
  destinations: `big_endian: convert` (Orthanc receives Explicit VR Little Endian with the
  original's pixel values) and `big_endian: refuse` (the study is QUARANTINED there with reason
  big-endian-refused).
"""

import os
import sqlite3
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"


def meta_end(data):
    assert data[128:132] == b"DICM"
    (glen,) = struct.unpack("<I", data[140:144])
    return 144 + glen


def elements(data, pos, end, big=False):
    """(tag, vr, value offset, length) of the top-level explicit VR elements from pos, stopping
    at Pixel Data (which it still yields)."""
    e = ">" if big else "<"
    while pos < end:
        group, elem = struct.unpack(e + "HH", data[pos:pos + 4])
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"OF", b"OD", b"OL", b"UC", b"UR"):
            (length,) = struct.unpack(e + "I", data[pos + 8:pos + 12])
            val = pos + 12
        else:
            (length,) = struct.unpack(e + "H", data[pos + 6:pos + 8])
            val = pos + 8
        yield (group << 16) | elem, vr, val, length
        if (group, elem) == (0x7FE0, 0x0010) or length == 0xFFFFFFFF:
            return
        pos = val + length


def meta_value(data, tag):
    for t, _, val, length in elements(data, 132, meta_end(data)):
        if t == tag:
            return data[val:val + length].rstrip(b"\0 ").decode()
    return None


def pixel_bytes(data):
    big = meta_value(data, 0x00020010) == EXPLICIT_BE
    for t, vr, val, length in elements(data, meta_end(data), len(data), big):
        if t == 0x7FE00010:
            raw = data[val:val + length]
            if big and vr == b"OW":  # the values, in host (little endian) order
                raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
            return raw
    return None


def with_un_uids(data):
    """The same Part-10 file (explicit VR little endian) with (0008,0016) and (0008,0018) written
    as UN instead of UI: the bytes of the value unchanged, the header the long form."""
    start = meta_end(data)
    out, pos = bytearray(data[:start]), start
    for tag, vr, val, length in elements(data, start, len(data)):
        if tag in (0x00080016, 0x00080018):
            assert vr == b"UI"
            out += struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"UN\0\0" + \
                struct.pack("<I", length) + data[val:val + length]
        else:
            out += data[pos:val + length]
        pos = val + length
        if tag > 0x00080018:
            break
    return bytes(out) + data[pos:]


def catalog(gw):
    return sqlite3.connect(f"file:{os.path.join(gw.state_dir, 'catalog.db')}?mode=ro", uri=True)


def dest_state(gw, study_uid, destination="repository"):
    db = catalog(gw)
    row = db.execute("SELECT sd.state, sd.reason_code, sd.reason FROM study_destinations sd "
                     "JOIN studies s ON s.id = sd.study_id WHERE s.study_uid = ? "
                     "AND sd.destination = ?", (study_uid, destination)).fetchone()
    db.close()
    return row


def snapshot_while_down(gw):
    """One read transaction: each study's state for the destination, and how many of its
    deliveries are on the wire."""
    db = catalog(gw)
    rows = db.execute("SELECT sd.state, (SELECT count(*) FROM deliveries d WHERE "
                      "d.study_id = sd.study_id AND d.destination = sd.destination AND "
                      "d.state = 'sending') FROM study_destinations sd").fetchall()
    db.close()
    return rows


def sending_without_flight(check, a):
    """Item 8: polls A's catalog while its destination is down."""
    samples, bad, waiting = 0, 0, 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6:
        for state, in_flight in snapshot_while_down(a):
            samples += 1
            if state == "SENDING" and in_flight == 0:
                bad += 1
            if state == "RETRY_WAIT":
                waiting += 1
        time.sleep(0.05)
    check(bad == 0, f"no study SENDING with nothing on the wire: {bad} of {samples} samples")
    check(waiting > 0, f"studies wait in RETRY_WAIT while the destination is down: {waiting}")
    log(f"while B was down: {samples} samples, {waiting} RETRY_WAIT, {bad} SENDING idle")


def un_uids_and_stale_error(check, args, work, repo, b):
    """Items 5 and 8. Returns (SOP Instance UID of the UN object, its study UID)."""
    folder = os.path.join(work, "export")
    os.makedirs(folder)
    ingest = (f"  folders:\n    - {{ path: {folder}, name: rt-export, after: delete, "
              f"settle: 1s, rescan: 1s }}\n")
    a = harness.Gateway(args.build_dir, work, "http://unused/", name="dirgw-a", stable_age="1s",
                        batch_max=3, ingest_yaml=ingest, retry="{ initial: 300ms, max: 1s }",
                        circuit="{ failures: 2, cooldown: 1s }",
                        dest_yaml="    un_elements: send\n")
    a.use_dimse(b.ae_title, b.port, calling_ae="PACS1")
    a.start()
    _, files = harness.synth(args.build_dir, os.path.join(work, "rt"), "CT", 7, seed=171,
                             extra=["--rows", "16", "--cols", "16"])
    with open(files[0], "rb") as f:
        un = with_un_uids(f.read())
    uid = harness.sop_instance_uid(files[1])  # a UI one, for the study's UID below
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            data = f.read()
        with open(os.path.join(folder, f"obj{i}.dcm"), "wb") as f:
            f.write(un if i == 0 else data)
    un_uid = meta_value(un, 0x00020003)

    def taken():
        db = catalog(a)
        n = db.execute("SELECT count(*) FROM instances").fetchone()[0]
        db.close()
        return n == len(files)
    harness.wait_for("A took the export", taken, 60)
    db = catalog(a)
    row = db.execute("SELECT sop_instance_uid, sop_class_uid FROM instances WHERE "
                     "sop_instance_uid = ?", (un_uid,)).fetchone()
    study_uid = db.execute("SELECT s.study_uid FROM studies s JOIN instances i ON "
                           "i.study_id = s.id WHERE i.sop_instance_uid = ?", (uid,)).fetchone()[0]
    db.close()
    check(row is not None and row[1] == meta_value(un, 0x00020002),
          f"A catalogued the UN-UID object under its decoded UIDs: {row}")
    harness.wait_for("A's attempts against B to fail",
                     lambda: a.status()["destinations"][0]["last_error"] != "", 30)
    sending_without_flight(check, a)
    b.start()
    harness.wait_for("A to deliver everything to B", lambda: all(
        s == "SENT" for s, _ in snapshot_while_down(a)), 60)
    d = a.status()["destinations"][0]
    check(d["last_error"] and d["last_error_cleared"] is True,
          f"status marks the old error as cleared: {d['last_error']!r} "
          f"cleared={d.get('last_error_cleared')}")
    rc, out, _ = a.run_cli("status")
    check(rc == 0 and "(old: cleared by a later success)" in out,
          "dirgw status says the last error is old")
    a.stop()
    # B took the object over C-STORE, UIDs as UN in the dataset.
    db = catalog(b)
    got = db.execute("SELECT sop_instance_uid FROM instances WHERE sop_instance_uid = ?",
                     (un_uid,)).fetchone()
    refusals = db.execute("SELECT reason FROM refusals").fetchall()
    db.close()
    check(got is not None, f"B accepted the VR UN UID object over C-STORE (refusals: {refusals})")
    check("sop_instance_uid=31" not in b.log_text() and "differs from the meta header" not in
          b.log_text(), "no refusal for a meta/dataset mismatch in B's log")
    def delivery():
        db = catalog(b)
        row = db.execute("SELECT d.state, d.attempts, d.last_error FROM deliveries d JOIN "
                         "instances i ON i.id = d.instance_id WHERE i.sop_instance_uid = ? AND "
                         "d.destination = 'repository'", (un_uid,)).fetchone()
        db.close()
        return row if row and row[1] > 0 else None
    row = harness.wait_for("B's first attempt to forward the UN-UID object", delivery, 60)
    in_orthanc = repo.instance_id(un_uid) is not None
    log(f"B forwarding the UN-UID object to Orthanc: {row}; in Orthanc: {in_orthanc}")
    # With un_elements: decode (B's default) Orthanc takes the copy whose UIDs are UI; with send,
    # Debian's Orthanc answers HTTP 400: a permanent failure with our reason (docs/ingest-dicom.md).
    check(in_orthanc or (row[0] == "failed" and "HTTP 400" in row[2]),
          f"the repository's answer is recorded, not retried for ever: {row}")
    return un_uid, study_uid


def big_endian(check, args, work, repo, b):
    """Item 3: convert for `repository`, refuse for `strict`."""
    _, files = harness.synth(args.build_dir, os.path.join(work, "be"), "CT", 2, seed=173,
                             patient_index=2, extra=["--rows", "16", "--cols", "16"])
    be_files = []
    for path in files:
        out = path[:-4] + "-be.dcm"
        subprocess.run(["dcmconv", "+tb", path, out], check=True, capture_output=True)
        be_files.append(out)
    with open(be_files[0], "rb") as f:
        be = f.read()
    with open(files[0], "rb") as f:
        le = f.read()
    check(meta_value(be, 0x00020010) == EXPLICIT_BE, "dcmconv wrote Explicit VR Big Endian")
    rc, out = harness.storescu(b.port, be_files, extra=["-xb"])
    check(rc == 0, f"storescu -xb: rc={rc} {out[-300:]}")
    db = catalog(b)
    stored_ts = {r[0] for r in db.execute("SELECT transfer_syntax FROM instances WHERE "
                                          "sop_instance_uid IN (?, ?)",
                                          [harness.sop_instance_uid(f) for f in files])}
    db.close()
    check(stored_ts == {EXPLICIT_BE}, f"B stored them as received: {stored_ts}")
    uid = harness.sop_instance_uid(files[0])
    harness.wait_for("the converted object in Orthanc", lambda: repo.instance_id(uid), 60)
    got = repo.instance_file(repo.instance_id(uid))
    check(meta_value(got, 0x00020010) == EXPLICIT_LE,
          f"Orthanc received Explicit VR Little Endian: {meta_value(got, 0x00020010)}")
    check(pixel_bytes(got) == pixel_bytes(le) == pixel_bytes(be),
          "pixel values equal: original, big endian as sent, converted copy")
    db = catalog(b)
    study_uid = db.execute("SELECT s.study_uid FROM studies s JOIN instances i ON "
                           "i.study_id = s.id WHERE i.sop_instance_uid = ?", (uid,)).fetchone()[0]
    db.close()
    harness.wait_for("the strict destination's decision",
                     lambda: (dest_state(b, study_uid, "strict") or ("",))[0] == "QUARANTINED",
                     30)
    state = dest_state(b, study_uid, "strict")
    check(state[1] == "big-endian-refused" and "Explicit VR Big Endian" in state[2],
          f"refused for the strict destination with a reason: {state}")
    rc, out, _ = b.run_cli("quarantine", "list")
    check(rc == 0 and study_uid in out, f"dirgw quarantine list shows it: {out[-300:]}")


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-leftovers-")
    check = harness.Checks()
    repo = harness.Orthanc(work).start()
    ingest = "    transfer_syntaxes: [explicit-vr-little-endian, implicit-vr-little-endian, " \
             "explicit-vr-big-endian]\n"
    strict = (f"  - name: strict\n    type: stow-rs\n    url: {repo.dicomweb}\n"
              f"    big_endian: refuse\n")
    b = harness.Gateway(args.build_dir, work, repo.dicomweb, name="dirgw-b", stable_age="1s",
                        ingest_yaml=ingest, dest_yaml="    big_endian: convert\n",
                        extra_yaml=strict)
    un_uids_and_stale_error(check, args, work, repo, b)
    big_endian(check, args, work, repo, b)
    log_b = b.log_text()
    b.stop()
    repo.stop()
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(marker not in log_b, f"B's log free of '{marker}'")
    print(f"door leftovers: {len(check.failures)} failures")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
