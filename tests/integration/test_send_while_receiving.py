#!/usr/bin/env python3
"""send_while_receiving (issue 16): a destination that forwards instances while their study is
still arriving, beside one without the key, each to its own real Orthanc.

- study A arrives slowly (three storescu runs with pauses shorter than stable_age): its first
  instances are in the early repository while dirgw still shows the study RECEIVING, and none is
  in the other one; in the end A is VERIFIED at the early destination (QIDO-RS) with every
  instance sent exactly once (one attempt each), and SENT at the other after stable age;
- study B's patient withdrew consent before B arrived: nothing of B is sent while receiving;
- study C's patient withdraws while C is arriving: what went before stays recorded as sent, the
  rest never leaves."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STABLE_AGE = 8  # seconds; the pauses between storescu runs are shorter


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-swr-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    small = ["--rows", "64", "--cols", "64"]
    studies = {}
    for key, seed, patient in (("A", 61, 1), ("B", 62, 2), ("C", 63, 3)):
        studies[key] = harness.synth(args.build_dir, os.path.join(work, key), "CT", 6, seed=seed,
                                     patient_index=patient, manifest=manifest, extra=small)
    hn = {p["study_uid"]: p["health_number"] for p in (json.loads(x) for x in open(manifest))}
    a_uid, a_files = studies["A"]
    b_uid, b_files = studies["B"]
    c_uid, c_files = studies["C"]

    early_repo = harness.Orthanc(work, name="early").start()
    plain_repo = harness.Orthanc(work, name="plain").start()
    plain = (f"  - name: plain\n    type: stow-rs\n"
             f"    url: http://127.0.0.1:{plain_repo.http_port}/dicom-web\n    verify: none\n"
             f"    retry: {{ initial: 500ms, max: 5s }}\n")
    gw = harness.Gateway(
        args.build_dir, work, f"http://127.0.0.1:{early_repo.http_port}/dicom-web",
        stable_age=f"{STABLE_AGE}s", batch_max=2, dest_yaml="    send_while_receiving: true\n",
        verify="{ mode: qido, delay: 1s, retry: 1s, timeout: 10s }", extra_yaml=plain).start()

    def study(uid):
        rc, out, _ = gw.run_cli("study", uid, "--json")
        return json.loads(out) if rc == 0 else {}

    def state(uid, dest):
        for d in study(uid).get("destinations", []):
            if d["destination"] == dest:
                return d["state"]
        return None

    def in_repo(repo, uid):
        try:
            return len(repo.get(f"/dicom-web/studies/{uid}/instances") or [])
        except Exception:
            return 0

    # A, slowly: 2 instances, pause, 2, pause, 2.
    started = time.monotonic()
    seen_while_receiving = 0
    for part in range(3):
        rc, _ = harness.storescu(gw.port, a_files[2 * part:2 * part + 2])
        check(rc == 0, f"storescu A part {part + 1}")
        if part == 0:
            harness.wait_for("A's first instances in the early repository",
                             lambda: in_repo(early_repo, a_uid) >= 2, 20, 0.2)
            seen_while_receiving = in_repo(early_repo, a_uid)
            check(state(a_uid, "repository") == "RECEIVING",
                  f"A still RECEIVING while its instances are in the repository "
                  f"({state(a_uid, 'repository')})")
            check(in_repo(plain_repo, a_uid) == 0,
                  "the destination without send_while_receiving sent nothing yet")
            check(state(a_uid, "plain") == "RECEIVING", "A RECEIVING for plain too")
        if part < 2:
            time.sleep(2)
    harness.wait_for("all of A in the early repository", lambda: in_repo(early_repo, a_uid) == 6,
                     20, 0.2)
    all_early = time.monotonic() - started
    check(state(a_uid, "repository") == "RECEIVING" and in_repo(plain_repo, a_uid) == 0,
          f"A complete at the early repository {all_early:.1f}s after its first run, while "
          f"still RECEIVING (stable age {STABLE_AGE}s after its last instance)")
    harness.log(f"A: {seen_while_receiving} instance(s) in the repository after the first run, "
                f"all 6 after {all_early:.1f}s, study still RECEIVING")

    # B: the patient withdrew before the study came.
    rc, out, err = gw.run_cli("consent", "withdraw", "hn:" + hn[b_uid])
    check(rc == 0, f"consent withdraw B: {out} {err}")
    rc, _ = harness.storescu(gw.port, b_files[:3])
    check(rc == 0, "storescu B part 1")
    time.sleep(2)
    check(in_repo(early_repo, b_uid) == 0, "nothing of a withdrawn patient sent while receiving")
    rc, _ = harness.storescu(gw.port, b_files[3:])
    check(rc == 0, "storescu B part 2")

    # C: withdrawn while arriving.
    rc, _ = harness.storescu(gw.port, c_files[:2])
    check(rc == 0, "storescu C part 1")
    harness.wait_for("C's first instances in the early repository",
                     lambda: in_repo(early_repo, c_uid) == 2, 20, 0.2)
    rc, out, err = gw.run_cli("consent", "withdraw", "hn:" + hn[c_uid])
    check(rc == 0, f"consent withdraw C: {out} {err}")
    check(state(c_uid, "repository") == "WITHDRAWN", f"C WITHDRAWN ({state(c_uid, 'repository')})")
    rc, _ = harness.storescu(gw.port, c_files[2:])
    check(rc == 0, "storescu C part 2")

    # A's study-level decision: VERIFIED at the early destination, SENT at the other.
    harness.wait_for("A VERIFIED at the early destination",
                     lambda: state(a_uid, "repository") == "VERIFIED", STABLE_AGE + 40, 0.5)
    harness.wait_for("A SENT to plain", lambda: state(a_uid, "plain") == "SENT", 30, 0.5)
    detail = study(a_uid)
    attempts = [d.get("attempts") for i in detail.get("instance_list", [])
                for d in i.get("deliveries", []) if d.get("destination") == "repository"]
    check(attempts == [1] * 6, f"each instance of A sent exactly once: attempts {attempts}")
    check(in_repo(early_repo, a_uid) == 6 and in_repo(plain_repo, a_uid) == 6,
          "A complete in both repositories")
    rounds = [r for r in detail.get("rounds", []) if r.get("destination") == "repository"]
    check(len(rounds) == 1 and rounds[0].get("sent") == 6, f"one round, 6 sent: {rounds}")

    # B and C: withdrawn; nothing of B anywhere, only C's first two at the early repository.
    harness.wait_for("B decided", lambda: state(b_uid, "repository") == "WITHDRAWN",
                     STABLE_AGE + 20, 0.5)
    time.sleep(1)
    check(in_repo(early_repo, b_uid) == 0 and in_repo(plain_repo, b_uid) == 0,
          "nothing of B reached either repository")
    check(in_repo(early_repo, c_uid) == 2, f"only C's first 2 at the early repository "
          f"({in_repo(early_repo, c_uid)})")
    check(in_repo(plain_repo, c_uid) == 0, "nothing of C at the destination without the key")
    c_sent = [d.get("state") for i in study(c_uid).get("instance_list", [])
              for d in i.get("deliveries", []) if d.get("destination") == "repository"]
    check(sorted(c_sent) == ["sent"] * 2 + ["withdrawn"] * 4,
          f"C's deliveries say what the repository holds: {sorted(c_sent)}")

    gw.stop()
    early_repo.stop()
    plain_repo.stop()
    hits = harness.scan_for_phi({"dirgwd.log": gw.log_text()}, manifest)
    check(not hits, f"patient values in the log: {hits}")
    print(f"send while receiving: A {seen_while_receiving}/6 in the repository while RECEIVING, "
          f"6/6 {all_early:.1f}s after the first, {len(check.failures)} failures")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
