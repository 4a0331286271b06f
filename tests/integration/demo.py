#!/usr/bin/env python3
"""make demo: the main job end to end, with real parts.

Starts a local regional repository (Orthanc + DICOMweb plugin, temporary storage, free ports),
starts dirgwd pointed at it, generates synthetic CT, MR and CR studies, sends them with DCMTK's
storescu as a PACS would, waits until they are in the repository, prints `dirgw status` and
what the repository holds, and stops everything it started."""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")
    args = ap.parse_args()
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])

    work = harness.tempdir("dirgw-demo-")
    studies = [("CT", 60, 1), ("MR", 24, 2), ("CR", 2, 3)]
    paths = []
    total = 0
    for modality, n, patient in studies:
        out = os.path.join(work, "pacs", modality.lower())
        uid, files = harness.synth(args.build_dir, out, modality, n, seed=7, patient_index=patient)
        log(f"synthetic {modality} study {uid}: {len(files)} instances")
        paths.append(out)
        total += len(files)

    repo = harness.Orthanc(work).start()
    # Verification on, as shipped (docs/verification.md), with a short delay for the demo.
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="2s",
                         verify="{ mode: qido, delay: 1s }").start()

    log(f"storescu (the PACS, AE PACS1) -> dirgwd: {total} instances")
    t0 = time.time()
    rc, out = harness.storescu(gw.port, paths)
    if rc != 0:
        print(out[-3000:])
        raise SystemExit(f"storescu failed ({rc})")
    log(f"received and made durable in {time.time() - t0:.1f}s; waiting for forwarding")
    harness.wait_for("the repository to hold every instance",
                     lambda: repo.count_instances() >= total, 300, 0.5)
    harness.wait_for("dirgw to record every study as SENT",
                     lambda: gw.status()["destinations"][0]["pending_instances"] == 0, 60, 0.5)
    log(f"all {total} instances in the repository {time.time() - t0:.1f}s after the first C-STORE")
    harness.wait_for("the repository to list every instance (QIDO-RS): VERIFIED",
                     lambda: gw.status()["destinations"][0]["verification"]["verified_instances"]
                     >= total, 120, 0.5)
    log(f"all {total} instances verified at the repository {time.time() - t0:.1f}s after the "
        "first C-STORE")

    print("\n$ dirgw status")
    rc, out, err = gw.run_cli("status")
    print(out or err)
    print("$ dirgw studies")
    rc, out, err = gw.run_cli("studies")
    print(out or err)

    print("The regional repository (Orthanc, asked through its REST API) now holds:")
    for s in repo.get("/studies?expand") or []:
        tags = s.get("MainDicomTags", {})
        print(f"  study {tags.get('StudyInstanceUID')}  {tags.get('StudyDescription', '')!s:28}"
              f"  {len(s.get('Series', []))} series, "
              f"{sum(len((repo.get('/series/' + x) or {}).get('Instances', [])) for x in s.get('Series', []))}"
              " instances")

    if args.keep:
        log(f"running; dirgw CLI: {gw.cli} --socket {gw.socket} status   (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    gw.stop()
    repo.stop()
    log("demo finished: everything it started is stopped")


if __name__ == "__main__":
    main()
