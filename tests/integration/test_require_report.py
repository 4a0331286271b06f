#!/usr/bin/env python3
"""require_report (issue 12): a destination that waits for a study's final report.

- study A: its images are HELD ("waiting for report", shown by dirgw study and status); a
  preliminary report (preliminary: send) does not end the wait; the final ORU^R01 does: the
  images and both report versions reach Orthanc together, in one round, and dirgw study says
  "with its final report";
- study B: no report ever comes; after max_wait the images go without it, visibly ("sent
  without report after 20s" in dirgw study, counted by dirgw status);
- nothing of either study reaches the repository before its time."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_hl7_reports import SR, mllp_send, oru  # noqa: E402

MAX_WAIT = 20


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-require-report-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    small = ["--rows", "64", "--cols", "64"]
    a_uid, a_files = harness.synth(args.build_dir, os.path.join(work, "a"), "CT", 2, seed=51,
                                   patient_index=1, manifest=manifest, extra=small)
    b_uid, b_files = harness.synth(args.build_dir, os.path.join(work, "b"), "CT", 2, seed=52,
                                   patient_index=2, manifest=manifest, extra=small)
    pat = {p["study_uid"]: p for p in (json.loads(line) for line in open(manifest))}

    repo = harness.Orthanc(work).start()
    hl7_port = harness.free_port()
    gw = harness.Gateway(
        args.build_dir, work, f"http://127.0.0.1:{repo.http_port}/dicom-web", stable_age="1s",
        dest_yaml=f"    require_report: {{ max_wait: {MAX_WAIT}s }}\n",
        ingest_yaml=(f"  hl7:\n    enabled: true\n    bind: 127.0.0.1\n    port: {hl7_port}\n"
                     "    reports: { enabled: true, accession_field: filler, preliminary: send,"
                     " uid_root: \"1.2.826.0.1.3680043.10.1011.9\" }\n")).start()

    def study(uid):
        rc, out, err = gw.run_cli("study", uid, "--json")
        return json.loads(out) if rc == 0 else {}

    def dest(uid):
        d = study(uid).get("destinations") or [{}]
        return d[0]

    def in_repo(uid):
        try:
            return repo.get(f"/dicom-web/studies/{uid}/instances?includefield=00080016") or []
        except Exception:
            return []

    started = time.monotonic()
    rc, _ = harness.storescu(gw.port, a_files + b_files)
    check(rc == 0, "storescu A and B")
    harness.wait_for("A and B held for their report",
                     lambda: dest(a_uid).get("state") == "HELD" and
                     dest(b_uid).get("state") == "HELD", 30, 0.3)
    da = dest(a_uid)
    check(da.get("report") == "waiting for report", f"dirgw study says waiting: {da}")
    check("waiting for report" in da.get("reason", ""), f"the HELD reason says why: {da}")
    rc, out, _ = gw.run_cli("study", a_uid)
    check("report: waiting for report" in out, f"dirgw study prints the wait: {out}")
    st = gw.status()["destinations"][0].get("require_report", {})
    check(st.get("waiting_for_report") == 2, f"dirgw status counts 2 waiting: {st}")

    # A preliminary (sent as version 1 by configuration) does not end the wait.
    pa = pat[a_uid]
    check(mllp_send(hl7_port, oru("Q1", pa, "P", "OBX|1|TX|||draft||||||P")) == "AA",
          "the preliminary is acknowledged AA")
    harness.wait_for("the preliminary in A", lambda: study(a_uid).get("instances") == 3, 20, 0.3)
    time.sleep(2)
    check(dest(a_uid).get("state") == "HELD", "a preliminary does not release A")
    check(repo.count_instances() == 0, "nothing reached the repository yet")

    # The final report: A goes, images and reports together.
    check(mllp_send(hl7_port, oru("Q2", pa, "F", "OBX|1|TX|||Normal study.||||||F")) == "AA",
          "the final report is acknowledged AA")
    harness.wait_for("A with its reports in the repository", lambda: len(in_repo(a_uid)) == 4,
                     30, 0.3)
    check(time.monotonic() - started < MAX_WAIT, "A went before max_wait, with its report")
    srs = [i for i in in_repo(a_uid) if i.get("00080016", {}).get("Value", [""])[0] == SR]
    check(len(srs) == 2, f"both report versions arrived with A's images ({len(srs)})")
    sa = study(a_uid)
    rounds = sa.get("rounds", [])
    check(len(rounds) == 1 and rounds[0].get("instances") == 4 and rounds[0].get("sent") == 4,
          f"images and reports went in one round: {rounds}")
    check(sa["destinations"][0].get("report") == "with its final report",
          f"dirgw study says A went with its report: {sa['destinations'][0]}")
    check(len(in_repo(b_uid)) == 0, "B still waits")

    # B: no report; after max_wait it goes without one.
    harness.wait_for("B sent without its report", lambda: len(in_repo(b_uid)) == 2,
                     MAX_WAIT + 30, 0.5)
    check(time.monotonic() - started >= MAX_WAIT - 1, "B waited max_wait")
    harness.wait_for("B SENT", lambda: dest(b_uid).get("state") == "SENT", 20, 0.3)
    db = dest(b_uid)
    check(db.get("report") == f"sent without report after {MAX_WAIT}s",
          f"dirgw study says B went without report: {db}")
    rc, out, _ = gw.run_cli("study", b_uid)
    check(f"report: sent without report after {MAX_WAIT}s" in out, f"printed: {out}")
    st = gw.status()["destinations"][0].get("require_report", {})
    check(st.get("waiting_for_report") == 0 and st.get("sent_without_report") == 1,
          f"dirgw status: none waiting, one sent without report: {st}")
    rc, out, _ = gw.run_cli("status")
    check("0 waiting for report, 1 sent without report" in out, f"dirgw status prints it: {out}")

    check(repo.count_instances() == 6, f"nothing else arrived ({repo.count_instances()})")
    gw.stop()
    repo.stop()
    hits = harness.scan_for_phi({"dirgwd.log": gw.log_text()}, manifest)
    check(not hits, f"patient values in the log: {hits}")
    print(f"require report: {len(check.failures)} failures")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
