#!/usr/bin/env python3
"""A withdrawal is final, raced against a real Orthanc (docs/policy.md).

Each trial sends one patient's study with storescu and, after a random delay that lands before
the study is stable, while its batches are on the wire or after it was sent, runs
`dirgw consent withdraw`. If, on a busy machine, the delays all fell on one side (nothing sent
yet, or something sent), up to SPARE more trials aim at the window missed. A recording proxy
between dirgwd and Orthanc notes when each request started and which study it carried. For
every trial:
- no request carrying the study started after the withdrawal command returned;
- the instances the catalog records as sent are exactly those Orthanc holds;
- the withdrawal notification lists exactly the instances Orthanc holds.
Prints: withdrawal races N, violations V, catalog = repository M/N."""

import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402
from recording_proxy import RecordingProxy  # noqa: E402
from test_consent_policy import start_notification_endpoint  # noqa: E402

TRIALS = int(os.environ.get("DIRGW_WITHDRAWAL_RACES", "50"))
SPARE = 4


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-races-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    rng = random.Random(20261202)

    studies = []
    # TRIALS random ones, then up to SPARE more if the random delays missed a window (below).
    for i in range(TRIALS + SPARE):
        uid, files = harness.synth(args.build_dir, os.path.join(work, f"s{i}"), "CT", 6,
                                   seed=500 + i, patient_index=100 + i, manifest=manifest,
                                   extra=["--rows", "256", "--cols", "256"])
        studies.append((uid, files))
    hn = {p["study_uid"]: p["health_number"] for p in map(json.loads, open(manifest))}

    repo = harness.Orthanc(work).start()
    # ~130 KB instances at 2 MB/s: a batch of two is on the wire for about 0.13 s.
    proxy = RecordingProxy(repo.http_port, rate=2 * 2**20)
    proxy.watch = {uid for uid, _ in studies}
    notices = start_notification_endpoint()
    gw = harness.Gateway(args.build_dir, work, f"http://127.0.0.1:{proxy.port}/dicom-web",
                         stable_age="300ms", batch_max=2,
                         dest_yaml=f"    withdrawal_notify_url: http://127.0.0.1:{notices.port}/withdrawals\n").start()

    returned = {}

    def trial(i, uid, files, when):
        """Sends the study, then withdraws: after a random delay; at once, with the proxy
        refusing every request until the withdrawal has returned ("none": on a busy machine the
        study can be stable and sent before the CLI's withdrawal lands, so "at once" alone does
        not make sure nothing was sent); or once a request carrying it has started ("sent")."""
        proxy.refuse = when == "none"
        rc, out = harness.storescu(gw.port, files)
        check(rc == 0, f"storescu trial {i}")
        if when == "random":
            time.sleep(rng.uniform(0.0, 1.6))
        elif when == "sent":
            harness.wait_for(f"trial {i}: a request carrying the study",
                             lambda: proxy.requests_carrying(uid), 60, 0.005)
        rc, out, err = gw.run_cli("consent", "withdraw", "hn:" + hn[uid])
        returned[uid] = time.monotonic()
        proxy.refuse = False
        check(rc == 0, f"withdraw trial {i}: {rc} {out} {err}")

    for i, (uid, files) in enumerate(studies[:TRIALS]):
        trial(i, uid, files, "random")
    # The random delays are meant to land in every window, but how long a study takes to become
    # stable and be sent depends on the machine's load: on a busy one they can all fall on the
    # same side. Top-up trials then aim at the window missed (at most SPARE), so that the
    # coverage asserted below does not depend on the load.
    tried = TRIALS
    for i, (uid, files) in enumerate(studies[TRIALS:], start=TRIALS):
        # What Orthanc holds is final only once nothing is left to send.
        harness.wait_for("the backlog to drain",
                         lambda: gw.status()["destinations"][0]["pending_instances"] == 0, 60,
                         0.3)
        landed = landings(studies[:tried], repo)
        missing = [w for w, n in (("none", landed["none"]),
                                  ("sent", landed["part"] + landed["all"])) if n == 0]
        if not missing:
            break
        log(f"the random delays missed a window ({landed}): trial {i} withdraws "
            f"{'while the proxy refuses requests' if missing[0] == 'none' else 'once a request carrying it started'}")
        trial(i, uid, files, missing[0])
        tried += 1
    studies = studies[:tried]

    harness.wait_for("the backlog to drain",
                     lambda: gw.status()["destinations"][0]["pending_instances"] == 0, 60, 0.3)

    def catalog_sent(uid):
        rc, out, err = gw.run_cli("study", uid, "--json")
        if rc != 0:
            return None
        return {i["sop_instance_uid"] for i in json.loads(out)["instance_list"]
                if any(d["state"] == "sent" for d in i["deliveries"])}

    held = {uid: in_orthanc(repo, uid) for uid, _ in studies}
    harness.wait_for("a notification for every study Orthanc holds",
                     lambda: all(notified(notices, uid) for uid in held if held[uid]), 60, 0.5)
    violations = 0
    agree = 0
    landed = {"none": 0, "part": 0, "all": 0}
    for uid, _ in studies:
        late = [r for r in proxy.requests_carrying(uid) if r.started > returned[uid]]
        for r in late:
            log(f"VIOLATION: {r.line} carrying {uid} started {r.started - returned[uid]:.3f} s "
                "after the withdrawal returned")
        violations += len(late)
        sent = catalog_sent(uid)
        ok = sent == held[uid] and notified(notices, uid) == held[uid]
        if not ok:
            log(f"MISMATCH {uid}: catalog {len(sent or ())}, Orthanc {len(held[uid])}, "
                f"notified {len(notified(notices, uid))}")
        agree += ok
        landed[window(len(held[uid]))] += 1
    log(f"withdrawal landed: before anything was sent {landed['none']}, "
        f"with part sent {landed['part']}, after all was sent {landed['all']}")
    print(f"withdrawal races {len(studies)}, violations {violations}, "
          f"catalog = repository {agree}/{len(studies)}")
    check(violations == 0, "requests started after a withdrawal returned")
    check(agree == len(studies), "catalog, repository and notification disagree")
    check(landed["none"] > 0 and landed["part"] + landed["all"] > 0,
          f"the random delays did not cover the windows: {landed}")
    text = gw.log_text()
    for h in harness.scan_for_phi({"dirgwd.log": text}, manifest):
        check(False, h)
    check(gw.stop() == 0, "dirgwd did not stop cleanly")
    repo.stop()
    proxy.close()
    print(f"withdrawal races: {len(check.failures)} failures")
    return 1 if check.failures else 0


def in_orthanc(repo, uid):
    found = repo.post("/tools/find", json.dumps(
        {"Level": "Instance", "Query": {"StudyInstanceUID": uid}, "Expand": True}))
    return {x["MainDicomTags"]["SOPInstanceUID"] for x in found}


def window(held):
    """Where a withdrawal landed, from how many of the study's 6 instances Orthanc holds."""
    return "none" if held == 0 else "all" if held == 6 else "part"


def landings(studies, repo):
    """How many of `studies` Orthanc holds none, part or all of."""
    landed = {"none": 0, "part": 0, "all": 0}
    for uid, _ in studies:
        landed[window(len(in_orthanc(repo, uid)))] += 1
    return landed


def notified(notices, uid):
    """SOP Instance UIDs of `uid` that withdrawal notifications listed."""
    out = set()
    for body in notices.bodies:
        for s in body.get("studies", []):
            if s["study_instance_uid"] == uid:
                out |= set(s["sop_instance_uids"])
    return out


if __name__ == "__main__":
    sys.exit(main())
