#!/usr/bin/env python3
"""The front door (issue 17, items 1-6), with real parts: DCMTK's dcmsend/storescu/findscu as the
PACS, a real dirgwd, a real Orthanc with its DICOMweb plugin.

- Objects compressed by DCMTK (RLE, JPEG lossless, JPEG-LS, deflate) are sent with dcmsend, which
  proposes the file's own syntax first: dirgw accepts it, and Orthanc receives the sender's exact
  dataset bytes in the sender's syntax.
- A JPEG-baseline transfer syntax over native pixel data is refused with a reason.
- An SOP Instance UID re-sent for another patient (same study) and for another study quarantines
  every study involved (reason: conflicting identity), and nothing of either reaches Orthanc.
- A Color Palette Storage object (newer than DCMTK's dictionary) is accepted.
- A refused presentation context (a C-FIND proposal) is logged and counted, in status and metrics.
"""

import os
import shutil
import struct
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
RAWSCU = os.path.join(harness.SOURCE_DIR, "tests/tools/rawscu.py")
COLOR_PALETTE = "1.2.840.10008.5.1.4.39.1"


def meta_end(data):
    """Offset of the first dataset byte of a Part-10 file (after the meta group)."""
    assert data[128:132] == b"DICM"
    (glen,) = struct.unpack("<I", data[140:144])
    return 144 + glen


def meta_ts(data):
    pos, end = 144, meta_end(data)
    while pos < end:
        group, elem = struct.unpack("<HH", data[pos:pos + 4])
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
            (length,) = struct.unpack("<I", data[pos + 8:pos + 12])
            val = pos + 12
        else:
            (length,) = struct.unpack("<H", data[pos + 6:pos + 8])
            val = pos + 8
        if (group, elem) == (0x0002, 0x0010):
            return data[val:val + length].rstrip(b"\0 ").decode()
        pos = val + length
    return None


def with_meta_ts(data, ts):
    """The same file with (0002,0010) replaced: a transfer syntax that lies about the dataset."""
    out, pos, end = b"", 144, meta_end(data)
    while pos < end:
        group, elem = struct.unpack("<HH", data[pos:pos + 4])
        vr = data[pos + 4:pos + 6]
        long_form = vr in (b"OB", b"OW", b"UN", b"SQ", b"UT")
        length = struct.unpack("<I" if long_form else "<H",
                               data[pos + 8:pos + 12] if long_form else data[pos + 6:pos + 8])[0]
        head = 12 if long_form else 8
        if (group, elem) == (0x0002, 0x0010):
            v = ts.encode() + (b"\0" if len(ts) % 2 else b"")
            out += data[pos:pos + 6] + struct.pack("<H", len(v)) + v
        else:
            out += data[pos:pos + head + length]
        pos += head + length
    return data[:140] + struct.pack("<I", len(out)) + out + data[end:]


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def dcmsend(port, files):
    return run(["dcmsend", "-v", "-aet", "PACS1", "-aec", "DIRGW", "127.0.0.1", str(port)] + files)


def main():
    args = harness.test_args(__file__)
    work = harness.tempdir("dirgw-front-door-")
    manifest = os.path.join(work, "manifest.jsonl")
    failures = []

    # --- test objects
    _, base = harness.synth(args.build_dir, os.path.join(work, "base"), "CT", 4, seed=31,
                            patient_index=1, manifest=manifest)
    compressed, sources = {}, {}
    for i, (name, tool) in enumerate([("rle", ["dcmcrle"]), ("jpeg-lossless", ["dcmcjpeg"]),
                                      ("jpeg-ls", ["dcmcjpls"]), ("deflate", ["dcmconv", "+td"])]):
        out = os.path.join(work, f"{name}.dcm")
        rc, text = run(tool + [base[i], out])
        if rc != 0:
            failures.append(f"{tool[0]} failed: {text}")
            continue
        compressed[name] = out
        sources[name] = base[i]
    _, conflict_src = harness.synth(args.build_dir, os.path.join(work, "conflict"), "CR", 2,
                                    seed=32, patient_index=2, manifest=manifest)
    other_patient = os.path.join(work, "other-patient.dcm")
    shutil.copy(conflict_src[0], other_patient)
    run(["dcmodify", "-nb", "-m", "(0010,0020)=OTHERPATIENT7", other_patient])
    other_study = os.path.join(work, "other-study.dcm")
    shutil.copy(conflict_src[1], other_study)
    run(["dcmodify", "-nb", "-m", "(0020,000D)=1.2.826.0.1.3680043.2.1125.9.17.1", other_study])
    _, lie_src = harness.synth(args.build_dir, os.path.join(work, "lie"), "CT", 1, seed=33,
                               patient_index=3, manifest=manifest)
    lying = os.path.join(work, "lying-jpeg.dcm")
    with open(lie_src[0], "rb") as f:
        data = f.read()
    with open(lying, "wb") as f:
        f.write(with_meta_ts(data, JPEG_BASELINE))
    _, pal_src = harness.synth(args.build_dir, os.path.join(work, "palette"), "CR", 1, seed=34,
                               patient_index=4, manifest=manifest)
    palette = os.path.join(work, "palette.dcm")
    shutil.copy(pal_src[0], palette)
    run(["dcmodify", "-nb", "-m", f"(0008,0016)={COLOR_PALETTE}", palette])

    repo = harness.Orthanc(work).start()
    metrics_port = harness.free_port()
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="3s",
                         extra_yaml=f"metrics: {{ enabled: true, bind: 127.0.0.1, port: {metrics_port} }}\n").start()

    # --- 1. compressed objects: the sender's own syntax, forwarded byte-identical
    rc, out = dcmsend(gw.port, list(compressed.values()))
    log(f"dcmsend compressed: rc={rc}")
    if rc != 0:
        failures.append(f"dcmsend of compressed objects failed: {out[-1500:]}")
    # --- 2. identity conflicts: originals first, then the conflicting copies, within stable_age
    rc, out = dcmsend(gw.port, conflict_src)
    rc2, out2 = dcmsend(gw.port, [other_patient, other_study])
    log(f"dcmsend originals rc={rc}, conflicting copies rc={rc2}")
    # --- 3. a transfer syntax that lies (DCMTK's own senders refuse to send it: rawscu does)
    rc, lie_out = run([sys.executable, RAWSCU, "127.0.0.1", str(gw.port), lying, "--calling-ae",
                       "PACS1", "--called-ae", "DIRGW"])
    log(f"rawscu lying JPEG: rc={rc} {lie_out.strip()}")
    # --- 4. a storage class newer than DCMTK's dictionary
    rc, out = dcmsend(gw.port, [palette])
    if rc != 0:
        failures.append(f"Color Palette Storage object not accepted: {out[-1500:]}")
    # --- 5. a presentation context dirgw does not take (C-FIND)
    run(["findscu", "-S", "-aet", "PACS1", "-aec", "DIRGW", "-k", "QueryRetrieveLevel=STUDY",
         "127.0.0.1", str(gw.port)])

    # Compression keeps the SOP Instance UID; read it from the uncompressed source.
    uids = {name: harness.sop_instance_uid(sources[name]) for name in compressed}
    harness.wait_for("Orthanc to hold the compressed objects",
                     lambda: all(repo.instance_id(u) for u in uids.values()), 120, 0.5)
    for name, path in compressed.items():
        with open(path, "rb") as f:
            sent = f.read()
        got = repo.instance_file(repo.instance_id(uids[name]))
        if meta_ts(got) != meta_ts(sent):
            failures.append(f"{name}: Orthanc holds syntax {meta_ts(got)}, sender had {meta_ts(sent)}")
        elif got[meta_end(got):] != sent[meta_end(sent):]:
            failures.append(f"{name}: dataset bytes in Orthanc differ from the sender's")
        else:
            log(f"{name}: stored and forwarded in {meta_ts(sent)}, byte-identical")

    # Identity conflicts: both studies held, nothing of either sent.
    rc, text = run(["dcmdump", "+P", "0020,000d", conflict_src[0]])
    study_a = text.split("[")[1].split("]")[0] if "[" in text else ""
    study_b = "1.2.826.0.1.3680043.2.1125.9.17.1"

    def quarantined():
        rc, out, err = gw.run_cli("quarantine", "list")
        return rc == 0 and study_a in out and study_b in out and out

    qlist = harness.wait_for("both conflicting studies QUARANTINED", quarantined, 60, 0.5)
    log("quarantine list:\n" + qlist)
    rc, show, err = gw.run_cli("quarantine", "show", study_a)
    print(show)
    if "conflicting identity for one SOP Instance UID" not in show:
        failures.append(f"quarantine show lacks the conflict: {show} {err}")
    for p in conflict_src:
        if repo.instance_id(harness.sop_instance_uid(p)):
            failures.append(f"a conflicting instance reached Orthanc: {harness.sop_instance_uid(p)}")
    # A release runs policy again (the policy stage counts the re-quarantine): the conflict holds.
    def quarantined_count():
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("dirgw_instances_quarantined_total"):
                    return float(line.split()[-1])
        return 0.0

    before = quarantined_count()
    rc, out, err = gw.run_cli("quarantine", "release", study_b)
    log(f"quarantine release {study_b}: rc={rc} {out.strip()}")
    harness.wait_for("policy to run again on the released study",
                     lambda: quarantined_count() > before, 60, 0.5)
    if not quarantined():
        failures.append("a released study in identity conflict left quarantine")
    for p in conflict_src + [other_study]:
        if repo.instance_id(harness.sop_instance_uid(p)):
            failures.append(f"a conflicting version reached Orthanc after release: {p}")

    # The lying JPEG: refused with its reason, never forwarded.
    text = gw.log_text()
    if "native (defined-length) pixel data in an encapsulated transfer syntax" not in text:
        failures.append("no log line refusing the lying JPEG with its reason")
    if repo.instance_id(harness.sop_instance_uid(lie_src[0])):
        failures.append("the lying JPEG reached Orthanc")
    if "status=0xC000" not in lie_out or "native (defined-length) pixel" not in lie_out:
        failures.append(f"the sender was not told why the lying JPEG failed: {lie_out[-800:]}")

    # Palette forwarded (or at least stored) and the C-FIND context counted.
    pal_uid = harness.sop_instance_uid(pal_src[0])
    try:
        harness.wait_for("Orthanc to hold the palette object", lambda: repo.instance_id(pal_uid),
                         60, 0.5)
    except Exception as e:  # noqa: BLE001
        failures.append(f"palette object not forwarded: {e}")
    if "presentation context refused" not in text:
        failures.append("no log line for the refused presentation context")
    status = gw.status()
    dicom = status["ingest"]["dicom"]
    log(f"status dicom: {dicom}")
    if dicom.get("presentation_contexts_refused", 0) < 1:
        failures.append(f"status does not count refused presentation contexts: {dicom}")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        metrics_text = r.read().decode()
    if 'dirgw_presentation_contexts_refused_total{reason="abstract_syntax"}' not in metrics_text:
        failures.append("metrics lack dirgw_presentation_contexts_refused_total")
    # Counts that add up: what status says was sent is what Orthanc holds.
    sent = sum(x["instances"] for x in status["destinations"][0]["states"] if x["state"] == "SENT")
    held = sum(x["instances"] for x in status["destinations"][0]["states"]
               if x["state"] == "QUARANTINED")
    log(f"status: SENT {sent} instances, QUARANTINED {held}, Orthanc {repo.count_instances()}, "
        f"backlog {status['destinations'][0]['pending_instances']}")
    if sent != repo.count_instances() or held != 4 or status["destinations"][0]["pending_instances"]:
        failures.append(f"counts do not add up: {status['destinations'][0]}")
    rc, human, err = gw.run_cli("status")
    print(human)
    if "presentation contexts refused" not in human:
        failures.append("human status lacks the refused presentation contexts")

    exit_code = gw.stop()
    if exit_code != 0:
        failures.append(f"dirgwd exited {exit_code}")
    failures += harness.scan_for_phi({"dirgwd.log": gw.log_text(), "metrics": metrics_text},
                                     manifest)
    repo.stop()
    print(f"front door: {len(compressed)} compressed syntaxes forwarded, 2 conflicting studies "
          f"held, lying JPEG refused, {len(failures)} failures")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
