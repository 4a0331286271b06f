#!/usr/bin/env python3
"""Storage commitment for a `type: dimse` destination (issue 15, docs/verification.md) against
a real Orthanc 1.10, its DICOM port the destination (AE REPO), dirgw declared in Orthanc's
DicomModalities. Orthanc answers an N-ACTION at once and sends its N-EVENT-REPORT later, on an
association it opens to dirgw's SCP (calling AE REPO, which allowed_callers does not name: it is
admitted for the Storage Commitment Push Model alone).

1. a study goes SENT -> VERIFIED through storage commitment; Orthanc holds every instance;
   `dirgw status` shows the verification as storage-commitment with the count;
2. an instance deleted from Orthanc before the commitment request is reported failed (Failed
   SOP Sequence), sent again, committed, and the study ends VERIFIED with the instance back;
3. REPO cannot store through dirgw's SCP: its C-STORE to dirgw is refused (the context is);
4. no patient value in dirgw's log.
Forged reports (another AE title, a Transaction UID dirgw did not issue) and a report that never
comes are tested in tests/unit/verify (no DCMTK tool sends an N-EVENT-REPORT of one's choosing).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-commit-")
    check = harness.Checks()
    started = time.monotonic()
    manifest = os.path.join(work, "manifest.jsonl")
    small = ["--rows", "64", "--cols", "64"]
    a_uid, a_files = harness.synth(args.build_dir, os.path.join(work, "a"), "CT", 3, seed=51,
                                   patient_index=21, manifest=manifest, extra=small)
    b_uid, b_files = harness.synth(args.build_dir, os.path.join(work, "b"), "MR", 3, seed=52,
                                   patient_index=22, manifest=manifest, extra=small)

    verify = "{ mode: storage-commitment, delay: 3s, retry: 2s, max_resends: 2, timeout: 15s }"
    gw = harness.Gateway(args.build_dir, work, "http://127.0.0.1:1/unused", stable_age="2s",
                         verify=verify)
    dicom_port = harness.free_port()
    repo = harness.Orthanc(work, name="commit", extra_config={
        "DicomServerEnabled": True,
        "DicomAet": "REPO",
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowStore": True,
        "DicomModalities": {"dirgw": {"AET": gw.ae_title, "Host": "127.0.0.1", "Port": gw.port,
                                      "AllowStorageCommitment": True}},
    }).start()
    gw.use_dimse("REPO", dicom_port).start()

    study, state = gw.study, gw.study_state

    # 1: SENT -> VERIFIED by storage commitment.
    rc, out = harness.storescu(gw.port, a_files)
    check(rc == 0, f"storescu A: {out[-300:]}")
    harness.wait_for("A to be SENT", lambda: state(a_uid) in ("SENT", "VERIFIED"), 40, 0.2)
    harness.wait_for("A to be VERIFIED", lambda: state(a_uid) == "VERIFIED", 40, 0.2)
    a = study(a_uid)
    check(all(i["deliveries"][0]["state"] == "verified" for i in a["instance_list"]),
          f"every delivery of A verified: {[i['deliveries'] for i in a['instance_list']]}")
    check(a["destinations"][0]["sent_at"] is not None, "A was SENT before VERIFIED")
    for f in a_files:
        check(repo.instance_id(harness.sop_instance_uid(f)) is not None,
              f"Orthanc holds A's {os.path.basename(f)}")
    trail = gw.log_text()
    check("storage commitment requested" in trail and "storage commitment: study verified" in trail,
          "the log shows the request and the verification")
    check('msg="association accepted" calling_ae=REPO' in trail,
          "the report came on Orthanc's own association to dirgw's SCP")
    v = gw.status()["destinations"][0]["verification"]
    check(v.get("mode") == "storage-commitment" and v.get("verified_instances", 0) >= 3,
          f"status shows storage commitment: {v}")
    rc, out, err = gw.run_cli("status")
    check("verification: storage-commitment" in out, f"human status: {out}")

    # 2: an instance deleted from Orthanc before the commitment request: reported failed, sent
    # again, committed.
    rc, out = harness.storescu(gw.port, b_files)
    check(rc == 0, f"storescu B: {out[-300:]}")
    lost_uid = harness.sop_instance_uid(b_files[1])
    lost_id = harness.wait_for("B's instance to reach Orthanc", lambda: repo.instance_id(lost_uid),
                               60, 0.05)
    repo.delete_instance(lost_id)
    check(repo.instance_id(lost_uid) is None, "the instance was not deleted from Orthanc")
    check(state(b_uid) in ("SENDING", "SENT", "READY"), f"B not yet verified: {state(b_uid)}")
    harness.wait_for("B's failed instance to be sent again and B VERIFIED",
                     lambda: state(b_uid) == "VERIFIED", 60, 0.3)
    b = study(b_uid)
    lost = [i for i in b["instance_list"] if i["sop_instance_uid"] == lost_uid][0]
    check(lost["deliveries"][0]["resends"] == 1, f"failed instance re-sent once: {lost['deliveries']}")
    check(repo.instance_id(lost_uid) is not None, "the failed instance is back in Orthanc")
    trail = gw.log_text()
    check("the destination did not commit every instance" in trail,
          "the log shows the failed commitment")

    # 3: the repository's AE is admitted for storage commitment reports alone.
    rc, out = harness.storescu(gw.port, a_files[:1], calling="REPO")
    check(rc != 0 or "Refused" in out or "No presentation context" in out.lower()
          or "no acceptable presentation contexts" in out.lower(),
          f"REPO must not store through dirgw: {out[-400:]}")

    check(gw.stop() == 0, "dirgwd did not stop cleanly")
    hits = harness.scan_for_phi({"dirgwd.log": gw.log_text()}, manifest)
    check(not hits, f"patient values in the log: {hits}")
    repo.stop()
    log(f"storage commitment: A VERIFIED, B's deleted instance reported failed, re-sent and "
        f"VERIFIED; {time.monotonic() - started:.0f}s")
    print(f"storage commitment: {len(check.failures)} failures")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
