#!/usr/bin/env python3
"""Image codecs run in dirgwd's codec process, never in the daemon: a codec that crashes or hangs
on an object costs that object, not the gateway.

Real parts: DCMTK's dcmsend (the PACS) sends a synthetic CT study to dirgwd, two of its four
instances compressed (RLE by dcmcrle, JPEG-LS by dcmcjpls), and dirgwd forwards over C-STORE to
DCMTK's storescp, which takes uncompressed objects only, so the compressed ones must be
decompressed (`decompress: always`, the default).

1. The codec crashes (test-only fault DIRGW_FAULT_FOR_TEST=codec-crash: the worker aborts on
   every job): dirgwd lives; the two native instances arrive; the two compressed ones fail
   permanently, and `dirgw study` gives each the reason (the codec process ended by SIGABRT);
   the log says so by SOP Instance UID only; no copy is left in spool/tmp.
2. The codec hangs (codec-hang, `codecs: { timeout: 2s }`), on a second study: its RLE
   instance fails after the time-out ("did not finish within 2 s and was stopped"), the native
   one arrives, and the hung worker is gone. Then, with a 10-minute time-out, dirgwd is stopped
   while its codec hangs on the study's JPEG-LS instance: it stops within seconds, the worker is
   killed, and the instance stays to be sent.
3. No fault, same state directory: the interrupted JPEG-LS instance goes by itself; `dirgw retry`
   the first study, and its compressed instances now go through the codec process and arrive
   uncompressed, their pixel data equal to what DCMTK's own dcmdrle / dcmdjpls make of the
   originals.
4. The sandbox (test-only fault codec-open:PATH: the worker tries to open PATH and answers how
   it went): the codec process cannot open the catalog nor the log's HMAC key, nor make a
   socket (codec-socket).
5. A slow codec (codec-slow: 1.5 s a job) and a PACS that aborts an association idle for 1 s (a
   second dirgwd, native syntaxes only): the compressed instances are decompressed with no
   association open, then sent over a new one; all four arrive and no association goes idle.
After each part dirgwd stops cleanly (exit 0) and no `dirgwd --codec-worker` process is left.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_dimse_sender import _connects  # noqa: E402
from harness import log  # noqa: E402

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
PIXEL_DATA = (0x7FE0, 0x0010)


def codec_workers(gw_pid):
    """PIDs of the codec processes that the dirgwd with that PID started, still running (other
    tests' gateways run beside this one)."""
    p = subprocess.run(["pgrep", "-f", f"dirgwd --codec-worker .*--parent {gw_pid} "],
                       capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()]


def stop(gw, check):
    """Stops dirgwd; true when it exited 0 and left no codec process behind."""
    pid = gw.process.proc.pid
    rc = gw.stop()
    check(rc == 0, f"dirgwd stopped cleanly: {rc}")
    left = codec_workers(pid)
    check(not left, f"no codec process left: {left}")


def dcmsend(port, files):
    p = subprocess.run(["dcmsend", "-aet", "PACS1", "-aec", "DIRGW", "127.0.0.1", str(port)] + files,
                       capture_output=True, text=True, errors="replace", timeout=120)
    return p.returncode, p.stdout + p.stderr


def make_study(build_dir, work, name, seed, patient):
    """A 4-instance CT: [RLE, JPEG-LS, native, native]; returns (study uid, files, originals)."""
    study_uid, files = harness.synth(build_dir, os.path.join(work, name), "CT", 4, seed=seed,
                                     patient_index=patient, extra=["--rows", "96", "--cols", "96"])
    rle = os.path.join(work, name + "-rle.dcm")
    jls = os.path.join(work, name + "-jls.dcm")
    subprocess.run(["dcmcrle", files[0], rle], check=True, capture_output=True)
    subprocess.run(["dcmcjpls", files[1], jls], check=True, capture_output=True)
    return study_uid, [rle, jls, files[2], files[3]]


def archived(archive_dir):
    """SOP Instance UID -> the file storescp stored."""
    out = {}
    for name in os.listdir(archive_dir):
        path = os.path.join(archive_dir, name)
        with open(path, "rb") as f:
            out[harness.sop_instance_uid(path)] = f.read()
    return out


def instances_of(gw, study_uid):
    """SOP Instance UID -> (delivery state, reason) for the study's one destination."""
    s = gw.study(study_uid)
    result = {}
    for inst in s.get("instance_list", []):
        d = (inst.get("deliveries") or [{}])[0]
        result[inst["sop_instance_uid"]] = (d.get("state"), d.get("last_error") or "")
    return result


def start_gateway(build_dir, work, archive_port, fault, timeout="1m"):
    if fault:
        os.environ["DIRGW_FAULT_FOR_TEST"] = fault
    else:
        os.environ.pop("DIRGW_FAULT_FOR_TEST", None)
    gw = harness.Gateway(build_dir, work, "http://127.0.0.1:9/unused", stable_age="1s",
                         retry="{ initial: 500ms, max: 2s }",
                         extra_yaml=f"codecs: {{ timeout: {timeout}, memory_limit: 2GiB }}\n")
    gw.use_dimse("ARCHIVE", archive_port)
    try:
        return gw.start()
    finally:
        os.environ.pop("DIRGW_FAULT_FOR_TEST", None)


def wait_settled(gw, study_uid, expect, timeout=60):
    """Waits until every instance's delivery state is final; returns instances_of()."""
    last = {}

    def settled():
        nonlocal last
        try:
            last = instances_of(gw, study_uid)
        except RuntimeError:
            return False
        return len(last) == expect and all(st in ("sent", "verified", "failed")
                                           for st, _ in last.values())
    harness.wait_for(f"study {study_uid} settled", settled, timeout, 0.3)
    return last


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()
    work = harness.tempdir("dirgw-codec-")
    archive_dir = os.path.join(work, "archive")
    os.makedirs(archive_dir)
    archive_port = harness.free_port()
    archive = harness.Process("storescp", ["storescp", "-aet", "ARCHIVE", "-od", archive_dir,
                                           str(archive_port)], os.path.join(work, "storescp.log"))
    harness.wait_for("storescp", lambda: archive.alive() and _connects(archive_port), 30)

    s1, files1 = make_study(args.build_dir, work, "s1", 31, 1)
    uids1 = [harness.sop_instance_uid(f) for f in files1]

    # --- 1. The codec crashes on every object.
    gw = start_gateway(args.build_dir, work, archive_port, "codec-crash")
    rc, out = dcmsend(gw.port, files1)
    check(rc == 0, f"dcmsend stored the study: {out[-500:]}")
    state = wait_settled(gw, s1, 4)
    check(gw.process.alive(), "dirgwd lives after its codec process crashed")
    for u in uids1[2:]:
        check(state[u][0] in ("sent", "verified"), f"native instance delivered: {state[u]}")
    for u in uids1[:2]:
        st, why = state[u]
        check(st == "failed" and "the codec process ended by signal 6 (SIGABRT) while working on it"
              in why, f"compressed instance failed permanently with the codec's end: {state[u]}")
    present = archived(archive_dir)
    check(len(present) == 2, f"two instances in the archive: {len(present)}")
    text = gw.log_text()
    check(text.count("codec process failed on an object: it is not sent decompressed") == 2,
          "the log names each failure once")
    check(not harness.spool_temporaries(os.path.join(gw.state_dir, "spool")),
          "no decompressed copy left in spool/tmp")
    stop(gw, check)

    # --- 2. The codec hangs: stopped after codecs.timeout.
    s2, files2 = make_study(args.build_dir, work, "s2", 32, 2)
    uids2 = [harness.sop_instance_uid(f) for f in files2]
    gw2 = start_gateway(args.build_dir, work, archive_port, "codec-hang", timeout="2s")
    rc, out = dcmsend(gw2.port, [files2[0], files2[2]])
    check(rc == 0, f"dcmsend stored the second study: {out[-500:]}")
    started = time.monotonic()
    state = wait_settled(gw2, s2, 2)
    took = time.monotonic() - started
    check(gw2.process.alive(), "dirgwd lives after its codec process hung")
    check(state[uids2[2]][0] in ("sent", "verified"), f"native instance delivered: {state[uids2[2]]}")
    st, why = state[uids2[0]]
    check(st == "failed" and "did not finish within 2 s and was stopped" in why,
          f"the hung job was stopped after the time-out: {state[uids2[0]]}")
    check(took >= 2.0, f"not before the time-out: {took:.1f} s")
    harness.wait_for("the hung worker gone", lambda: len(codec_workers(gw2.process.proc.pid)) <= 1,
                     10)
    stop(gw2, check)

    # --- 2b. A stop while the codec hangs (time-out 10 min) does not wait for it: the job ends,
    # the worker is killed, and the instance stays to be sent (not failed).
    gw2 = start_gateway(args.build_dir, work, archive_port, "codec-hang", timeout="10m")
    rc, out = dcmsend(gw2.port, [files2[1]])
    check(rc == 0, f"dcmsend stored the JPEG-LS instance: {out[-500:]}")
    harness.wait_for("a codec process at work", lambda: codec_workers(gw2.process.proc.pid), 30)
    time.sleep(0.5)
    started = time.monotonic()
    stop(gw2, check)
    took = time.monotonic() - started
    check(took < 15, f"dirgwd stopped in {took:.1f} s although its codec hung")

    # --- 3. No fault: the failed instances retried, decompressed by the codec process.
    gw3 = start_gateway(args.build_dir, work, archive_port, None)
    rc, out, err = gw3.run_cli("retry", s1)
    check(rc == 0, f"dirgw retry {s1}: {out} {err}")
    state = wait_settled(gw3, s1, 4)
    check(all(st in ("sent", "verified") for st, _ in state.values()),
          f"every instance of the first study delivered: {state}")
    # The instance whose job a stop ended went again at this start, by itself.
    state2 = wait_settled(gw3, s2, 3)
    check(state2[uids2[1]][0] in ("sent", "verified"),
          f"the instance the stop interrupted delivered after the restart: {state2[uids2[1]]}")
    check("codec process started" in gw3.log_text(), "the codec process did the decompression")
    by_uid = archived(archive_dir)
    for f, tool in ((files1[0], "dcmdrle"), (files1[1], "dcmdjpls")):
        u = harness.sop_instance_uid(f)
        stored = by_uid.get(u)
        if not check(stored is not None, f"{tool[4:]} instance in the archive"):
            continue
        plain = f + ".plain.dcm"
        subprocess.run([tool, "+te", f, plain], check=True, capture_output=True)
        with open(plain, "rb") as fh:
            diffs = harness.compare_datasets(fh.read(), stored)
        check(not diffs, f"{tool[4:]} instance: every attribute equal to {tool}'s: {diffs[:5]}")
    stop(gw3, check)
    # --- 4. The sandbox: a codec taken over by an image could open files; in its sandbox it
    # cannot open the catalog or the pseudonymisation key (test-only fault: the worker tries and
    # answers how it went).
    state = os.path.join(work, "dirgw", "state")
    secrets = (os.path.join(state, "catalog.db"), os.path.join(state, "keys", "log-hmac.key"))
    for k, secret in enumerate(secrets):
        check(os.path.exists(secret), f"{secret} exists")
        s3, files3 = make_study(args.build_dir, work, f"s{3 + k}", 33 + k, 3 + k)
        gw2 = start_gateway(args.build_dir, work, archive_port, "codec-open:" + secret)
        rc, out = dcmsend(gw2.port, [files3[0]])
        check(rc == 0, f"dcmsend stored the RLE instance: {out[-500:]}")
        st, why = wait_settled(gw2, s3, 1)[harness.sop_instance_uid(files3[0])]
        check(st == "failed" and f"test open of {secret}: Permission denied" in why,
              f"the codec process cannot open {os.path.basename(secret)}: {why}")
        check("codec process not sandboxed" not in gw2.log_text(), "the codec process is sandboxed")
        stop(gw2, check)
    # ... nor make a socket (its system call filter; Landlock alone would allow it on Debian
    # 12's kernel).
    s4, files4 = make_study(args.build_dir, work, "s4b", 36, 6)
    gw2 = start_gateway(args.build_dir, work, archive_port, "codec-socket")
    rc, out = dcmsend(gw2.port, [files4[0]])
    check(rc == 0, f"dcmsend stored the RLE instance: {out[-500:]}")
    st, why = wait_settled(gw2, s4, 1)[harness.sop_instance_uid(files4[0])]
    check(st == "failed" and "test socket: Operation not permitted" in why,
          f"the codec process cannot make a socket: {why}")
    check("without its system call filter" not in gw2.log_text(),
          "the codec process has its system call filter")
    stop(gw2, check)

    archive.stop()

    # --- 5. A slow codec does not hold the association. The archive is a PACS that aborts an
    # association idle for 1 s (a second dirgwd: its dimse_timeout) and takes native syntaxes
    # only; each decompression takes 1.5 s (test-only fault codec-slow). Held open during the
    # decompression, the association would be aborted at the first compressed object, every
    # time; released first, every object arrives.
    peer = harness.Gateway(args.build_dir, work, "http://127.0.0.1:9/unused", name="pacs",
                           allowed_callers=("DIRGW",),
                           ingest_yaml="    transfer_syntaxes: [explicit-vr-little-endian, "
                                       "implicit-vr-little-endian]\n")
    with open(peer.config_path) as f:
        text = f.read()
    with open(peer.config_path, "w") as f:
        f.write(text.replace("dimse_timeout: 30s", "dimse_timeout: 1s")
                .replace("ae_title: DIRGW", "ae_title: ARCHIVE"))
    peer.start()
    s5, files5 = make_study(args.build_dir, work, "s5", 35, 5)
    gw5 = start_gateway(args.build_dir, work, peer.port, "codec-slow:1500")
    rc, out = dcmsend(gw5.port, files5)
    check(rc == 0, f"dcmsend stored the fifth study: {out[-500:]}")
    try:
        state = wait_settled(gw5, s5, 4, timeout=45)
    except TimeoutError:
        state = instances_of(gw5, s5)  # still retrying: the checks below say what is missing
    check(all(st in ("sent", "verified") for st, _ in state.values()),
          f"every instance delivered past the slow codec: {state}")
    at_peer = {i["sop_instance_uid"] for i in peer.study(s5).get("instance_list", [])}
    check(at_peer == {harness.sop_instance_uid(f) for f in files5},
          f"the PACS holds all four instances: {len(at_peer)}")
    check("association idle beyond dimse_timeout" not in peer.log_text(),
          "the PACS never found an association of ours idle")
    check("association lost" not in gw5.log_text(), "no association lost")
    stop(gw5, check)
    peer.stop()
    return check.finish("codec isolation: OK")


if __name__ == "__main__":
    sys.exit(main())
