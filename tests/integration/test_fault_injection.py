#!/usr/bin/env python3
"""Never lose, never duplicate: fault injection against a real Orthanc.

Between dirgwd and Orthanc sits a TCP proxy of the test's own that resets connections, stalls
mid-body and refuses for a while. dirgwd is killed with SIGKILL at random moments while the
PACS (storescu) sends and while dirgwd forwards, at least 20 times; Orthanc is stopped for a
while and started again; the spool's disk floor is reached. At the end every instance whose
C-STORE got a success response must be in Orthanc with the right bytes, none missing, the
catalog must pass PRAGMA integrity_check, and re-sends must stay within one batch per
interruption. Every third kill is dirgwd's own, at a test-only fault point: SIGKILL right after
a group commit's COMMIT returned and before its C-STOREs are answered (DIRGW_FAULT_FOR_TEST,
issue 16). Prints: kills (of which after a group commit), resets, stalls, instances acknowledged,
instances in repository, re-sends, lost."""

import argparse
import os
import random
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from chaos_proxy import ChaosProxy  # noqa: E402
from harness import log  # noqa: E402
from resending_pacs import (ResendingPacs, missing_or_different, stopped_gateway_failures,  # noqa: E402
                            wait_drained)

BATCH = 10
STUDIES = 8


def kill_after_group_commit(gw, rng, files):
    """Restarts dirgwd armed to SIGKILL itself after its Nth group commit and waits until it did.
    True when it died at the fault point.

    A group commit needs instances arriving, and on a quiet machine the PACS may have had all
    of them acknowledged already: so a second sender of the test's own sends instances again,
    ten per association, until dirgwd dies. Received again, an instance is a duplicate: its
    audit entry is written in a group commit like any other, and it is never forwarded twice."""
    os.environ["DIRGW_FAULT_FOR_TEST"] = f"kill-after-group-commit:{rng.randint(1, 25)}"
    try:
        gw.start()
    except RuntimeError:
        pass  # it may kill itself before its control socket answered (the PACS keeps sending)
    finally:
        del os.environ["DIRGW_FAULT_FOR_TEST"]
    process = gw.process
    stop = threading.Event()

    def send_again():
        first = rng.randrange(len(files))
        while not stop.is_set() and process.alive():
            chunk = [files[(first + k) % len(files)] for k in range(10)]
            first += 10
            harness.storescu(gw.port, chunk, extra=["-to", "10", "-ta", "10", "-td", "10"])
            time.sleep(0.1)

    again = threading.Thread(target=send_again, daemon=True)
    again.start()
    try:
        harness.wait_for("dirgwd to kill itself after a group commit",
                         lambda: not process.alive(), 30, 0.05)
    except TimeoutError:
        gw.kill9()
        return False
    finally:
        stop.set()
        again.join(70)
    died = process.proc.returncode == -9
    gw.kill9()
    return died


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--kills", type=int, default=int(os.environ.get("DIRGW_FAULT_KILLS", "22")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("DIRGW_FAULT_SEED", "0")) or
                    int(time.time()))
    args = ap.parse_args()
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])
    rng = random.Random(args.seed)
    log(f"seed {args.seed} (DIRGW_FAULT_SEED={args.seed} repeats this run)")

    work = harness.tempdir("dirgw-fault-")
    files = []
    for k in range(STUDIES):
        _, f = harness.synth(args.build_dir, os.path.join(work, f"study{k}"), "CT", 40, seed=100 + k,
                             patient_index=k, extra=["--rows", "256", "--cols", "256"])
        files += f
    log(f"{len(files)} instances in {STUDIES} studies")

    repo = harness.Orthanc(work).start()
    proxy = ChaosProxy(repo.http_port)
    # Slow the repository's link so that kills and faults land in the middle of requests.
    proxy.rate = 3 * 2**20
    gw = harness.Gateway(args.build_dir, work, f"http://127.0.0.1:{proxy.port}/dicom-web",
                         stable_age="1s", batch_max=BATCH, request_timeout="4s",
                         retry="{ initial: 100ms, max: 1s }", circuit="{ failures: 3, cooldown: 500ms }")
    gw.start()
    pacs = ResendingPacs(gw.port, files)
    pacs.thread.start()

    kills = 0
    commit_kills = 0
    orthanc_restarts = 0
    disruptions = 0
    t_end = time.time() + 240
    while kills < args.kills and time.time() < t_end:
        time.sleep(rng.uniform(0.2, 1.5))
        # Something goes wrong on the way to the repository, now and then.
        roll = rng.random()
        if roll < 0.5:
            mode = rng.choice(["reset", "stall", "refuse"])
            proxy.set_mode(mode)
            disruptions += 1
            time.sleep(rng.uniform(0.5, 2.0))
            proxy.set_mode("pass")
        if kills == args.kills // 2 and orthanc_restarts == 0:
            log("stopping Orthanc for a while")
            repo.stop()
            time.sleep(3)
            gw.kill9()
            kills += 1
            gw.start()
            time.sleep(2)
            repo.start()
            orthanc_restarts += 1
            continue
        gw.kill9()
        kills += 1
        if kills % 3 == 0 and kill_after_group_commit(gw, rng, files):
            kills += 1
            commit_kills += 1
        gw.start()
    log(f"{kills} kills done ({commit_kills} after a group commit); letting everything drain")
    proxy.set_mode("pass")
    proxy.rate = 0

    acked = pacs.finish(180)
    status = wait_drained(gw, 180)

    in_repo = repo.count_instances()
    missing, failures = missing_or_different(repo, acked)
    lost = len(missing)
    failures = [f"acknowledged instance {uid} is not in the repository" for uid in missing] + failures
    if status["catalog"]["instances"] != len(files):
        failures.append(f"catalog holds {status['catalog']['instances']} instances, expected {len(files)}")
    states = {s["state"]: s["studies"] for s in status["destinations"][0]["states"]}
    if states.get("SENT") != STUDIES:
        failures.append(f"expected {STUDIES} studies SENT, got {states}")

    # Re-sends: parts that went towards the repository beyond one per instance.
    resends = proxy.parts - len(files)
    interruptions = kills + disruptions + orthanc_restarts
    if resends > BATCH * interruptions:
        failures.append(f"{resends} re-sends for {interruptions} interruptions: more than one batch each")

    # The disk floor: below it, new objects are refused (A700), nothing accepted is lost.
    gw.stop()
    free = shutil.disk_usage(work).free
    filler = os.path.join(work, "filler")
    floor_checked = False
    if free > 3 * 2**30:
        gw.reconfigure(spool_floor=str(free - 2**30))
        gw.start()
        with open(filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, 3 * 2**29)
        _, extra = harness.synth(args.build_dir, os.path.join(work, "late"), "CT", 1, seed=999,
                                 patient_index=9, extra=["--rows", "64", "--cols", "64"])
        rc, out = harness.storescu(gw.port, extra, extra=["-v"])
        if "Refused: OutOfResources" not in out and "0xa700" not in out.lower():
            failures.append(f"below the floor a C-STORE was not refused with A700: {out[-400:]}")
        if not any("floor" in w for w in gw.status().get("warnings", [])):
            failures.append("status does not warn that the spool is below its floor")
        os.unlink(filler)
        rc, out = harness.storescu(gw.port, extra)
        if rc != 0:
            failures.append(f"after space came back the C-STORE still failed: {out[-400:]}")
        harness.wait_for("the late instance to arrive", lambda: repo.count_instances() >= len(files) + 1, 60, 0.5)
        floor_checked = True
        gw.stop()
    else:
        log("not enough free disk to test the spool floor safely: skipped")

    failures += stopped_gateway_failures(gw)
    repo.stop()
    proxy.close()

    if commit_kills == 0:
        failures.append("dirgwd never died at the group-commit fault point")
    print(f"fault injection: kills {kills} ({commit_kills} after a group commit), resets {proxy.resets}, stalls {proxy.stalls}, "
          f"refusal periods {disruptions}, orthanc restarts {orthanc_restarts}, "
          f"instances acknowledged {len(acked)}, instances in repository {in_repo}, "
          f"re-sends {resends}, lost {lost}, disk floor {'checked' if floor_checked else 'skipped'}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
