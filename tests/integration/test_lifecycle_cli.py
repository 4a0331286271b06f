#!/usr/bin/env python3
"""The study life cycle through the CLI, as IT staff would use it, against a real Orthanc:
hold and release, a late instance sent as a delta (both sends shown by `dirgw study`),
an identical re-send acknowledged but neither stored nor sent twice, a re-send with different
bytes kept as a flagged new version, `dirgw retry --failed` after the repository refused for
good, and the exit codes and messages of refused actions."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-lifecycle-")
    check = harness.Checks()
    failures = check.failures

    small = ["--rows", "64", "--cols", "64"]
    a_uid, a_files = harness.synth(args.build_dir, os.path.join(work, "a"), "CT", 4, seed=21, patient_index=1, extra=small)
    b_uid, b_files = harness.synth(args.build_dir, os.path.join(work, "b"), "MR", 3, seed=22, patient_index=2, extra=small)
    late_dir = os.path.join(work, "a-late")
    _, late_files = harness.synth(args.build_dir, late_dir, "CT", 5, seed=21, patient_index=1, extra=small)
    late = late_files[4]  # instance 5 of the same study: arrives after the study was sent

    repo = harness.Orthanc(work).start()
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="3s").start()

    def cli(*a):
        rc, out, err = gw.run_cli(*a)
        return rc, out, err

    def study(uid):
        rc, out, err = cli("study", uid, "--json")
        assert rc == 0, err
        return json.loads(out)

    # Hold B while it is still arriving; A goes.
    rc, out = harness.storescu(gw.port, a_files + b_files)
    check(rc == 0, f"storescu failed: {out[-300:]}")
    rc, out, err = cli("hold", b_uid, "--reason", "radiologist reviewing")
    check(rc == 0 and "1 changed" in out, f"hold: rc={rc} {out} {err}")
    harness.wait_for("study A to be sent", lambda: study(a_uid)["destinations"][0]["state"] == "SENT", 30, 0.3)
    s = study(b_uid)
    check(s["destinations"][0]["state"] == "HELD" and s["destinations"][0]["reason"] == "radiologist reviewing",
          f"B should be HELD with the reason: {s['destinations']}")
    check(repo.count_instances() == 4, f"only A's 4 instances should be in Orthanc, found {repo.count_instances()}")
    rc, out, err = cli("studies", "--state", "HELD")
    check(rc == 0 and b_uid in out and a_uid not in out, f"studies --state HELD: {out}")

    # Releasing what is not held is refused with a reason and a non-zero exit.
    rc, out, err = cli("release", a_uid)
    check(rc == 1 and "SENT cannot become" in err, f"release of a SENT study: rc={rc} {err}")
    rc, out, err = cli("hold", "1.2.3.4.5.6.7.8.9")
    check(rc == 1 and "no such study" in err, f"hold of an unknown study: rc={rc} {err}")

    rc, out, err = cli("release", b_uid)
    check(rc == 0, f"release: {rc} {err}")
    harness.wait_for("study B to be sent after release", lambda: study(b_uid)["destinations"][0]["state"] == "SENT", 30, 0.3)
    check(repo.count_instances() == 7, f"Orthanc should hold 7, holds {repo.count_instances()}")

    # An identical re-send: acknowledged, not stored or sent twice.
    rc, out = harness.storescu(gw.port, a_files[:1])
    check(rc == 0, "identical re-send not acknowledged")
    st = gw.status()
    check(st["ingest"]["dicom"]["duplicates"] == 1, f"duplicates counter: {st['ingest']['dicom']}")
    check(st["catalog"]["instances"] == 7, f"catalog instances after duplicate: {st['catalog']['instances']}")
    check(study(a_uid)["destinations"][0]["state"] == "SENT", "a duplicate must not reopen the study")

    # A late instance: a delta, round 2; the study shows both sends.
    rc, out = harness.storescu(gw.port, [late])
    check(rc == 0, "late instance not acknowledged")
    harness.wait_for("the delta to be sent", lambda: study(a_uid)["destinations"][0]["state"] == "SENT"
                     and study(a_uid)["destinations"][0]["round"] == 2, 30, 0.3)
    rounds = [r for r in study(a_uid)["rounds"] if r["destination"] == "repository"]
    check([(r["round"], r["kind"], r["instances"], r["sent"]) for r in rounds] == [(1, "initial", 4, 4), (2, "delta", 1, 1)],
          f"rounds of A: {rounds}")
    check(repo.count_instances() == 8, f"Orthanc should hold 8, holds {repo.count_instances()}")
    rc, out, err = cli("study", a_uid)
    check(rc == 0 and "round 2 (delta)" in out, f"human study view: {out}")

    # Same SOP instance, other bytes: a new version, flagged (policy: send).
    subprocess.run(["dcmodify", "-nb", "-m", "(0008,103E)=CORRECTED SERIES", a_files[1]], check=True)
    rc, out = harness.storescu(gw.port, [a_files[1]])
    check(rc == 0, "new version not acknowledged")
    inst = [i for i in study(a_uid)["instance_list"] if "new-version" in i["flags"]]
    check(len(inst) == 1, f"one instance flagged new-version: {[i['flags'] for i in study(a_uid)['instance_list']]}")

    # The repository refuses for good, then is fixed: retry --failed sends again.
    c_uid, c_files = harness.synth(args.build_dir, os.path.join(work, "c"), "CR", 1, seed=23, patient_index=3, extra=small)
    gw.stop()
    gw.reconfigure(repository_url=repo.url + "/no-such-dicomweb-root")  # 404: permanent
    gw.start()
    rc, out = harness.storescu(gw.port, c_files)
    harness.wait_for("study C to fail for good", lambda: study(c_uid)["destinations"][0]["state"] == "FAILED", 30, 0.3)
    st = gw.status()
    check(any("failed stud" in w for w in st["warnings"]), f"status warns about failed studies: {st['warnings']}")
    rc, out, err = cli("status")
    check("WARNING" in out and "FAILED" in out, f"human status shows the failure: {out}")
    gw.stop()
    gw.reconfigure(repository_url=repo.dicomweb)
    gw.start()
    rc, out, err = cli("retry", "--failed")
    check(rc == 0 and (" 1 changed" in out or " 2 changed" in out), f"retry --failed: {rc} {out} {err}")
    harness.wait_for("study C to be sent after retry", lambda: study(c_uid)["destinations"][0]["state"] == "SENT", 30, 0.3)

    check(gw.stop() == 0, "dirgwd did not stop cleanly")
    repo.stop()
    print(f"life cycle through the CLI: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
