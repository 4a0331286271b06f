#!/usr/bin/env python3
"""The audit trail as IT staff use it: objects received, studies sent, operator actions, start
and stop are recorded; `dirgw audit verify` proves the chain intact; an edited, a removed and a
reordered entry are each found and named; `dirgw audit export` writes DICOM audit messages."""

import argparse
import os
import sqlite3
import sys
import xml.dom.minidom

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])
    work = harness.tempdir("dirgw-audit-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    failures = check.failures

    uid, files = harness.synth(args.build_dir, os.path.join(work, "a"), "CT", 5, seed=41,
                               patient_index=4, manifest=manifest, extra=["--rows", "64", "--cols", "64"])
    repo = harness.Orthanc(work).start()
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="1s").start()
    rc, out = harness.storescu(gw.port, files)
    check(rc == 0, "storescu")
    harness.wait_for("the study to be sent", lambda: gw.status()["destinations"][0]["pending_instances"] == 0
                     and repo.count_instances() == 5, 30, 0.3)
    gw.run_cli("hold", uid)
    gw.run_cli("release", uid)
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
