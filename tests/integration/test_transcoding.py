#!/usr/bin/env python3
"""Lossless transcoding before upload (issue 14), with real parts: storescu (the PACS) sends a
synthetic CT to dirgwd, whose destination has `transcode: jpeg-ls-lossless`.

1. STOW-RS to a real Orthanc: every instance Orthanc stores (GET /instances/{id}/file) is JPEG-LS
   Lossless; decoded with DCMTK's dcmdjpls, its pixel data equals the original's byte for byte
   (and every other attribute too). `dirgw status` and the metrics endpoint show the objects
   transcoded and the bytes saved, the same figure; the test prints it. The spool keeps the
   originals (each object file still hashes to its name) and the copies are gone from spool/tmp.
2. type: dimse to Orthanc's DICOM port: stored as JPEG-LS too, pixels identical.
3. type: dimse to an Orthanc that refuses JPEG-LS: the originals go (counted as refused), data
   sets byte for byte as stored.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_dimse_sender as tds  # noqa: E402
from harness import log  # noqa: E402

PIXEL_DATA = (0x7FE0, 0x0010)
N = 6


def decoded_elements(work, stored, name):
    """dcmdjpls (DCMTK's JPEG-LS decoder) applied to what the repository stored."""
    src = os.path.join(work, name + ".jls.dcm")
    dst = os.path.join(work, name + ".decoded.dcm")
    with open(src, "wb") as f:
        f.write(stored)
    subprocess.run(["dcmdjpls", src, dst], check=True, capture_output=True, timeout=60)
    with open(dst, "rb") as f:
        return f.read()


def check_stored(work, repo, files, check, label):
    """Each instance in the repository is JPEG-LS Lossless and decodes to the original."""
    identical = 0
    stored_bytes = 0
    for path in files:
        with open(path, "rb") as f:
            original = f.read()
        oid = repo.instance_id(harness.sop_instance_uid(path))
        stored = repo.instance_file(oid) if oid else None
        if not check(stored is not None, f"{label}: {os.path.basename(path)} in Orthanc"):
            continue
        stored_bytes += len(stored)
        check(tds.syntax_of(stored) == tds.JPEG_LS,
              f"{label}: {os.path.basename(path)} stored as JPEG-LS Lossless "
              f"(is {tds.syntax_of(stored)})")
        decoded = decoded_elements(work, stored, f"{label}-{os.path.basename(path)}")
        a, b = harness.dataset_elements(original), harness.dataset_elements(decoded)
        same_pixels = a[PIXEL_DATA][1] == b[PIXEL_DATA][1]
        check(same_pixels, f"{label}: {os.path.basename(path)}: decoded pixel data byte for byte")
        diffs = [d for d in harness.compare_datasets(original, decoded)
                 if not d.startswith("(0028,2110)")]  # LossyImageCompression "00": says lossless
        check(not diffs, f"{label}: {os.path.basename(path)}: other attributes as sent: {diffs[:5]}")
        identical += same_pixels
    return identical, stored_bytes


def metric(port, name, labels):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(re.escape(name) + r"\{" + re.escape(labels) + r"\} (\S+)", text)
    return float(m.group(1)) if m else None


def check_spool(gw, check):
    """The originals are untouched (content-addressed: each file hashes to its name) and no
    transcoded copy is left in spool/tmp."""
    objects = os.path.join(gw.state_dir, "spool", "objects")
    n = 0
    for shard in os.listdir(objects):
        for name in os.listdir(os.path.join(objects, shard)):
            with open(os.path.join(objects, shard, name), "rb") as f:
                check(hashlib.sha256(f.read()).hexdigest() == name, f"spool object {name} unchanged")
            n += 1
    left = harness.spool_temporaries(os.path.join(gw.state_dir, "spool"))
    check(not left, f"no transcoded copy left in spool/tmp: {left}")
    return n


def stow_phase(args, work, files, check):
    repo = harness.Orthanc(work).start()
    metrics_port = harness.free_port()
    gw = harness.Gateway(
        args.build_dir, work, repo.dicomweb, stable_age="1s",
        dest_yaml="    transcode: { to: jpeg-ls-lossless, max_pixel_bytes: 64MiB }\n",
        extra_yaml=f"metrics: {{ enabled: true, bind: 127.0.0.1, port: {metrics_port} }}\n").start()
    try:
        rc, out = harness.storescu(gw.port, files)
        check(rc == 0, f"storescu: rc={rc} {out[-300:]}")
        harness.wait_for(f"Orthanc to hold {len(files)} instances",
                         lambda: repo.count_instances() >= len(files), 60, 0.5)
        harness.wait_for("the study SENT", lambda: gw.status()["destinations"][0]
                         ["pending_instances"] == 0, 60, 0.5)
        identical, stored_bytes = check_stored(work, repo, files, check, "stow-rs")
        t = gw.status()["destinations"][0]["transcode"]
        log(f"status transcode: {t}")
        check(t["to"] == "jpeg-ls-lossless" and t["transcoded"] == len(files),
              f"status: {len(files)} transcoded ({t['transcoded']})")
        check(t["skipped"] == 0 and t["verify_failed"] == 0, "nothing skipped or failed")
        check(t["bytes_saved"] == t["original_bytes"] - t["sent_bytes"] and t["bytes_saved"] > 0,
              "bytes saved = stored size - sent size, and positive")
        saved = metric(metrics_port, "dirgw_transcode_bytes_saved_total", 'destination="repository"')
        done = metric(metrics_port, "dirgw_transcode_objects_total",
                      'destination="repository",result="transcoded"')
        check(saved == t["bytes_saved"], f"metrics bytes saved {saved} = status {t['bytes_saved']}")
        check(done == len(files), f"metrics objects transcoded {done}")
        rc, text, _ = gw.run_cli("status")
        line = [ln for ln in text.splitlines() if "transcode:" in ln]
        check(rc == 0 and line and "saved" in line[0], f"dirgw status shows the savings: {line}")
        log(f"dirgw status: {line[0].strip() if line else '(none)'}")
        objects = check_spool(gw, check)
        ratio = t["sent_bytes"] / t["original_bytes"] if t["original_bytes"] else 0
        print(f"SAVINGS stow-rs: {t['transcoded']} CT instances, {t['original_bytes']} bytes "
              f"stored -> {t['sent_bytes']} bytes sent, {t['bytes_saved']} bytes saved "
              f"({100 * (1 - ratio):.1f} %); Orthanc holds {stored_bytes} bytes; "
              f"{identical}/{len(files)} decoded byte for byte; {objects} spool objects unchanged",
              flush=True)
    finally:
        gw.stop()
        repo.stop()
    return gw.log_text()


class RefusingOrthanc(tds.DicomOrthanc):
    """Orthanc's DICOM port taking only the native syntaxes: JPEG-LS is refused."""

    def __init__(self, workdir):
        super().__init__(workdir)
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["AcceptedTransferSyntaxes"] = [tds.IMPLICIT, tds.EXPLICIT]
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)


def dimse_phase(args, work, files, check, refusing):
    label = "dimse-refusing" if refusing else "dimse"
    # Each phase its own Orthanc storage: instances left by another phase would count.
    repo = (RefusingOrthanc if refusing else tds.DicomOrthanc)(os.path.join(work, label)).start()
    gw = harness.Gateway(args.build_dir, work, "http://unused/", name="dirgw-" + label,
                         stable_age="1s", dest_yaml="    transcode: jpeg-ls-lossless\n")
    gw.use_dimse(repo.aet, repo.dicom_port)
    gw.start()
    try:
        rc, out = harness.storescu(gw.port, files)
        check(rc == 0, f"storescu ({label}): rc={rc} {out[-300:]}")
        harness.wait_for(f"{label}: Orthanc to hold {len(files)} instances",
                         lambda: repo.count_instances() >= len(files), 60, 0.5)
        harness.wait_for(f"{label}: the study SENT", lambda: gw.status()["destinations"][0]
                         ["pending_instances"] == 0, 60, 0.5)
        t = gw.status()["destinations"][0]["transcode"]
        log(f"{label} status transcode: {t}")
        if refusing:
            check(t["refused"] == len(files) and t["transcoded"] == 0,
                  f"{label}: JPEG-LS refused, the originals went ({t})")
            for path in files:
                with open(path, "rb") as f:
                    original = f.read()
                oid = repo.instance_id(harness.sop_instance_uid(path))
                stored = repo.instance_file(oid) if oid else None
                if check(stored is not None, f"{label}: {os.path.basename(path)} in Orthanc"):
                    check(tds.split_part10(stored)[1] == tds.split_part10(original)[1],
                          f"{label}: {os.path.basename(path)}: data set byte for byte as stored")
        else:
            check_stored(work, repo, files, check, label)
            check(t["transcoded"] == len(files) and t["bytes_saved"] > 0,
                  f"{label}: {len(files)} transcoded, bytes saved ({t})")
            print(f"SAVINGS dimse: {t['transcoded']} instances, {t['bytes_saved']} bytes saved",
                  flush=True)
    finally:
        gw.stop()
        repo.stop()
    return gw.log_text()


def main():
    args = harness.test_args(__file__)

    work = harness.tempdir("dirgw-transcoding-")
    manifest = os.path.join(work, "manifest.jsonl")
    _, files = harness.synth(args.build_dir, os.path.join(work, "ct"), "CT", N, seed=71,
                             patient_index=7, manifest=manifest)
    check = harness.Checks()
    logs = {"dirgwd-stow.log": stow_phase(args, work, files, check),
            "dirgwd-dimse.log": dimse_phase(args, work, files, check, refusing=False),
            "dirgwd-refusing.log": dimse_phase(args, work, files, check, refusing=True)}
    leaks = harness.scan_for_phi(logs, manifest)
    check(not leaks, f"patient values in the logs: {leaks[:3]}")
    return check.finish("transcoding: OK")


if __name__ == "__main__":
    sys.exit(main())
