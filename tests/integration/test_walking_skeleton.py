#!/usr/bin/env python3
"""Walking skeleton, end to end with real parts: storescu (the PACS) sends a 200-instance CT
study and a 2-instance CR study to dirgwd, which forwards them over STOW-RS to a real Orthanc
with its DICOMweb plugin. Orthanc must end up holding exactly those instances, each with every
attribute and the pixel data equal to what was sent. In the same run, bad input (a file that is
not DICOM, a truncated instance, a calling AE title not on the list) is refused with a clear
DIMSE status or association rejection and a log line with the reason, and the good studies
still arrive whole. Logs must carry no patient value."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

RAWSCU = os.path.join(harness.SOURCE_DIR, "tests/tools/rawscu.py")
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"


def rawscu(port, *args, file=None):
    p = subprocess.run([sys.executable, RAWSCU, "127.0.0.1", str(port)] + ([file] if file else []) +
                       ["--calling-ae", "PACS1", "--called-ae", "DIRGW"] + list(args),
                       capture_output=True, text=True, timeout=120)
    return p.returncode, (p.stdout + p.stderr).strip()


def main():
    args = harness.test_args(__file__)

    work = harness.tempdir("dirgw-skeleton-")
    manifest = os.path.join(work, "manifest.jsonl")
    ct_uid, ct_files = harness.synth(args.build_dir, os.path.join(work, "ct"), "CT", 200, seed=11,
                                     patient_index=1, manifest=manifest)
    cr_uid, cr_files = harness.synth(args.build_dir, os.path.join(work, "cr"), "CR", 2, seed=12,
                                     patient_index=2, manifest=manifest)
    assert len(ct_files) == 200 and len(cr_files) == 2, (len(ct_files), len(cr_files))
    log(f"generated CT study {ct_uid} (200 instances) and CR study {cr_uid} (2 instances)")

    repo = harness.Orthanc(work).start()
    metrics_port = harness.free_port()
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb,
                         extra_yaml=f"metrics: {{ enabled: true, bind: 127.0.0.1, port: {metrics_port} }}\n").start()
    failures = []

    # --- bad input, in the same run
    garbage = os.path.join(work, "not-dicom.bin")
    with open(garbage, "wb") as f:
        f.write(b"This is a discharge summary in plain text, not a DICOM object.\n" * 40)
    rc, out = rawscu(gw.port, "--sop-class", CT_SOP_CLASS, "--sop-instance", "1.2.3.4.5.6.7.8.1",
                     "--ts", "1.2.840.10008.1.2.1", "--raw-dataset", garbage)
    log(f"not-DICOM: rc={rc} {out}")
    if rc != 0 or "status=0x0000" in out or "status=0x" not in out:
        failures.append(f"a non-DICOM dataset was not refused with a DIMSE status: {out}")

    rc, out = rawscu(gw.port, "--truncate", "300000", file=ct_files[0])
    log(f"truncated: rc={rc} {out}")
    if rc != 0 or "status=0x0000" in out or "status=0x" not in out:
        failures.append(f"a truncated instance was not refused with a DIMSE status: {out}")

    rc, out = harness.storescu(gw.port, cr_files[:1], calling="INTRUDER")
    log(f"unknown caller: storescu rc={rc}")
    if rc == 0 or "Calling AE Title Not Recognized" not in out:
        failures.append(f"an unknown calling AE was not rejected as such: {out[-500:]}")

    # A peer that sends part of an association request and then nothing must not hold up others.
    import socket
    import time as _time
    stalled = socket.create_connection(("127.0.0.1", gw.port))
    stalled.sendall(b"\x01\x00\x00\x00\x10\x00\x00\x01")
    t0 = _time.time()
    p = subprocess.run(["echoscu", "-aet", "PACS1", "-aec", "DIRGW", "-to", "20", "127.0.0.1",
                        str(gw.port)], capture_output=True, text=True, timeout=60)
    echo_s = _time.time() - t0
    log(f"C-ECHO beside a stalled association request: rc={p.returncode} in {echo_s:.2f}s")
    if p.returncode != 0 or echo_s > 5:
        failures.append(f"a stalled association request held up a C-ECHO: rc={p.returncode}, {echo_s:.1f}s")
    stalled.close()

    # --- the good studies
    rc, out = harness.storescu(gw.port, [os.path.join(work, "ct"), os.path.join(work, "cr")])
    if rc != 0:
        failures.append(f"storescu of the good studies failed ({rc}): {out[-2000:]}")
    log("storescu sent 202 instances")

    harness.wait_for("Orthanc to hold 202 instances", lambda: repo.count_instances() >= 202, 300, 0.5)

    def all_sent():
        st = gw.status()
        d = st["destinations"][0]
        states = {s["state"]: s["studies"] for s in d["states"]}
        return d["pending_instances"] == 0 and states.get("SENT") == 2 and st

    status = harness.wait_for("dirgw to record both studies as SENT", all_sent, 60, 0.5)
    log(f"status: {json.dumps(status['destinations'][0])}")

    count = repo.count_instances()
    if count != 202:
        failures.append(f"Orthanc holds {count} instances, expected exactly 202")
    compared = 0
    for path in ct_files + cr_files:
        uid = harness.sop_instance_uid(path)
        oid = repo.instance_id(uid)
        if oid is None:
            failures.append(f"instance {uid} is not in Orthanc")
            continue
        with open(path, "rb") as f:
            sent = f.read()
        diffs = harness.compare_datasets(sent, repo.instance_file(oid))
        if diffs:
            failures.append(f"instance {uid} differs: {diffs[:5]}")
        compared += 1
    log(f"compared {compared} instances attribute by attribute, pixel data included")

    if status["catalog"]["instances"] != 202:
        failures.append(f"catalog has {status['catalog']['instances']} instances, expected 202")
    if status["refusals"]["count"] < 3:
        failures.append(f"status shows {status['refusals']['count']} refusals, expected >= 3")

    text = gw.log_text()
    for needle in ("calling AE title not in allowed_callers", "C-STORE refused"):
        if needle not in text:
            failures.append(f"no log line saying '{needle}'")

    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        metrics_text = r.read().decode()
    for needle in ('dirgw_instances_received_total{source="dicom"} 202',
                   'dirgw_instances_sent_total{destination="repository"} 202',
                   'dirgw_instances_refused_total{reason="prescan"} 2',
                   'dirgw_associations_total{result="rejected"} 1',
                   'dirgw_backlog_instances{destination="repository"} 0'):
        if needle not in metrics_text:
            failures.append(f"metrics lack: {needle}")
    rc, out, err = gw.run_cli("status")
    if rc != 0 or "destination repository" not in out:
        failures.append(f"human status failed: {rc} {err}")
    print(out)

    exit_code = gw.stop()
    if exit_code != 0:
        failures.append(f"dirgwd exited {exit_code} on SIGTERM")
    rc, out, err = gw.run_cli("status")
    if rc != 3 or "not running" not in err:
        failures.append(f"status with the daemon down: rc={rc}, stderr={err!r}")

    hits = harness.scan_for_phi({"dirgwd.log": gw.log_text(), "metrics": metrics_text}, manifest)
    failures += hits
    repo.stop()

    print(f"walking skeleton: 202 sent, {count} in repository, {compared} compared, "
          f"3 bad inputs, {len(failures)} failures")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
