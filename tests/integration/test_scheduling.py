#!/usr/bin/env python3
"""Forwarding on a schedule (issue 14), with real parts: dirgwd forwards to a real Orthanc over
STOW-RS with an upload window that is closed now (computed from the current UTC time, so the test
never waits for a minute boundary).
  1. Outside the window nothing is sent; `dirgw status` says SCHEDULED and when the window opens.
  2. A STAT study (calling AE listed in priority.stat_calling_aes) goes at once, window closed.
  3. `dirgw prioritize UID` makes a waiting study STAT: it goes at once; the others keep waiting.
  4. Restarted with the window open and a 2 MiB/s cap, the backlog drains; the measured upload
     rate (bytes sent / time in requests, from dirgwd's log) is within 10 % of the cap."""

import argparse
import datetime
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

CAP = 2 * 1024 * 1024


def hhmm(t):
    return t.strftime("%H:%M")


def dest_yaml(window, cap="2MiB"):
    return (f"    schedule: {{ windows: [\"Mon-Sun {window}\"], stat_bypass: true }}\n"
            f"    bandwidth: {cap}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])
    check = harness.Checks()

    work = harness.tempdir("dirgw-sched-")
    manifest = os.path.join(work, "manifest.jsonl")
    ct_uid, ct_files = harness.synth(args.build_dir, os.path.join(work, "ct"), "CT", 24, seed=41,
                                     patient_index=1, manifest=manifest)
    cr_uid, cr_files = harness.synth(args.build_dir, os.path.join(work, "cr"), "CR", 1, seed=42,
                                     patient_index=2, manifest=manifest)
    mr_uid, mr_files = harness.synth(args.build_dir, os.path.join(work, "mr"), "MR", 2, seed=43,
                                     patient_index=3, manifest=manifest)
    ct_bytes = sum(os.path.getsize(f) for f in ct_files)

    now = datetime.datetime.now(datetime.timezone.utc)
    opens = (now + datetime.timedelta(hours=3)).replace(second=0, microsecond=0)
    closed_window = f"{hhmm(opens)}-{hhmm(opens + datetime.timedelta(hours=1))}"
    repo = harness.Orthanc(work).start()
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, allowed_callers=("PACS1", "ER_CT"),
                         stable_age="1s", batch_max=4, dest_yaml=dest_yaml(closed_window),
                         extra_yaml="priority: { stat_calling_aes: [ER_CT] }\n").start()
    try:
        rc, out = harness.storescu(gw.port, ct_files + mr_files)
        check(rc == 0, f"storescu of the routine studies: rc={rc} {out[-300:]}")
        rc, out = harness.storescu(gw.port, cr_files, calling="ER_CT")
        check(rc == 0, f"storescu of the STAT study: rc={rc} {out[-300:]}")

        # 2. the STAT study goes although the window is closed
        harness.wait_for("the STAT study in Orthanc", lambda: repo.count_instances() == 1, 30)
        time.sleep(3)  # the routine studies are READY by now and must still wait
        check(repo.count_instances() == 1,
              f"only the STAT study was sent outside the window ({repo.count_instances()})")

        # 1. status shows the window closed and when it opens
        st = gw.status()["destinations"][0]
        log(f"window: {st['window']}, cap {st['bandwidth_cap']}, auth {st['auth']}")
        check(st["window"]["state"] == "SCHEDULED", f"status says SCHEDULED: {st['window']}")
        check((st["window"]["next_open"] or "").startswith(opens.strftime("%Y-%m-%dT%H:%M")),
              f"next window opens at {opens:%Y-%m-%dT%H:%M}: {st['window']['next_open']}")
        check(st["bandwidth_cap"] == CAP, f"status shows the cap: {st['bandwidth_cap']}")
        check(st["pending_instances"] == 26, f"26 instances wait: {st['pending_instances']}")
        rc, text, _ = gw.run_cli("status")
        check("next window opens" in text, "dirgw status prints when the next window opens")

        # 3. an operator makes the MR study STAT: it goes at once, the CT keeps waiting
        rc, out, err = gw.run_cli("prioritize", mr_uid)
        check(rc == 0 and "1 changed" in out, f"dirgw prioritize: rc={rc} {out} {err}")
        harness.wait_for("the prioritized study in Orthanc", lambda: repo.count_instances() == 3, 30)
        time.sleep(2)
        check(repo.count_instances() == 3, f"the CT study still waits ({repo.count_instances()})")
        check(re.search(r'msg="?operator action"?.*action="?prioritize', gw.log_text()),
              "the operator action is logged")

        # 4. window open, 2 MiB/s: the backlog drains at the cap
        gw.stop()
        before = len(gw.log_text())
        start = now - datetime.timedelta(hours=1)
        gw.reconfigure(dest_yaml=dest_yaml(f"{hhmm(start)}-{hhmm(start + datetime.timedelta(hours=3))}"))
        gw.start()
        t0 = time.time()
        harness.wait_for("the CT study in Orthanc", lambda: repo.count_instances() == 27, 60)
        wall = time.time() - t0
        text = gw.log_text()[before:] if len(gw.log_text()) > before else gw.log_text()
        # Bytes on the wire and time per request, as dirgwd logs each STOW-RS request.
        reqs = [(int(b), int(m)) for b, m in re.findall(
            r'msg="?stow-rs request done"?.*? bytes_sent="?(\d+)"? ms="?(\d+)', text)]
        sent, ms = sum(b for b, _ in reqs), sum(m for _, m in reqs)
        rate = sent / (ms / 1000.0) if ms else 0
        log(f"measured upload rate {rate / 1048576:.3f} MiB/s: {sent} bytes in {len(reqs)} "
            f"requests taking {ms} ms (study files {ct_bytes} bytes; wall {wall:.1f}s) against a "
            f"cap of {CAP / 1048576:.1f} MiB/s")
        check(sent >= ct_bytes, f"every byte of the study counted ({sent} >= {ct_bytes})")
        check(ms > 0 and abs(rate - CAP) <= 0.10 * CAP,
              f"rate within 10 % of the cap: {rate / 1048576:.3f} MiB/s")
        st = gw.status()["destinations"][0]
        check(st["window"]["state"] == "open", f"window open after the restart: {st['window']}")
    finally:
        gw.stop()
        repo.stop()
    phi = harness.scan_for_phi({"dirgwd.log": gw.log_text()}, manifest)
    check(not phi, f"no patient value in the logs: {phi[:3]}")
    if check.failures:
        print(f"{len(check.failures)} check(s) failed", flush=True)
        return 1
    log("scheduling: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
