#!/usr/bin/env python3
"""De-identification per destination, through dirgwd, against two real Orthancs.

The regional repository ("repository") receives the identified originals; a research archive
("research", `deidentify:` with options) receives de-identified copies only:
- every research instance says Patient Identity Removed = YES with a De-identification Method
  (and its code sequence); its Study/Series/SOP Instance UIDs are 2.25 pseudonyms; Patient ID and
  name are a pseudonym; Pixel Data is byte for byte the original's; a private attribute on the
  safe list is kept and any other private attribute is gone; no value of the synthetic patients
  (name, IDs, health number, birth date, accession) appears in any research file;
- a second study of the same patient, sent after a restart, gets the same pseudonymous Patient ID
  (the key persists, 0600), and the re-sent first study the same UIDs;
- an ultrasound image (a kind known to carry burned-in text, without Burned In Annotation) is
  quarantined for research only, with its reason, and reaches the repository;
- the pseudonyms never appear in dirgwd's log or the audit export (no mapping in clear)."""

import argparse
import json
import os
import re
import stat
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402


def add_private(path, elements):
    """Inserts explicit-VR-LE LO elements [(group, elem, text)] (one odd group, in order) before
    the first top-level element of a higher group. The synthetic files are explicit VR LE."""
    data = open(path, "rb").read()
    meta_len = struct.unpack_from("<I", data, 132 + 8)[0]
    pos = 132 + 12 + meta_len
    group0 = elements[0][0]
    while True:
        group, _ = struct.unpack_from("<HH", data, pos)
        if group > group0:
            break
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL"):
            length = struct.unpack_from("<I", data, pos + 8)[0]
            pos += 12 + length
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    raw = b""
    for g, e, text in elements:
        v = text.encode()
        if len(v) % 2:
            v += b" "
        raw += struct.pack("<HH", g, e) + b"LO" + struct.pack("<H", len(v)) + v
    open(path, "wb").write(data[:pos] + raw + data[pos:])


def dump(path):
    return subprocess.run(["dcmdump", "-q", "+L", path], capture_output=True, text=True,
                          errors="replace").stdout


def value(dump_text, tag):
    m = re.search(r"^\(" + tag + r"\) \w\w \[([^\]]*)\]", dump_text, re.M | re.I)
    return m.group(1) if m else None


def pixel_data(path):
    data = open(path, "rb").read()
    return data[data.rfind(b"\xe0\x7f\x10\x00"):]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])
    work = harness.tempdir("dirgw-deid-")
    manifest = os.path.join(work, "manifest.jsonl")
    check = harness.Checks()
    small = ["--rows", "64", "--cols", "64"]

    ct_uid, ct_files = harness.synth(args.build_dir, os.path.join(work, "ct"), "CT", 3, seed=41,
                                     patient_index=7, manifest=manifest, extra=small)
    for f in ct_files:
        add_private(f, [(0x0009, 0x0010, "ACME SAFE"), (0x0009, 0x1010, "SAFE VALUE"),
                        (0x0009, 0x0011, "ACME OTHER"), (0x0009, 0x1110, "SECRET NOTE")])
    mr_uid, mr_files = harness.synth(args.build_dir, os.path.join(work, "mr"), "MR", 1, seed=41,
                                     patient_index=7, manifest=manifest, extra=small)
    us_uid, us_files = harness.synth(args.build_dir, os.path.join(work, "us"), "US", 1, seed=43,
                                     patient_index=8, manifest=manifest,
                                     extra=["--rows", "32", "--cols", "32", "--frames", "2"])
    # As many ultrasound consoles write it: no Burned In Annotation at all.
    subprocess.run(["dcmodify", "-nb", "-e", "(0028,0301)"] + us_files, check=True,
                   capture_output=True)

    repo = harness.Orthanc(work, name="repository").start()
    research = harness.Orthanc(work, name="research").start()
    research_yaml = f"""  - name: research
    type: stow-rs
    url: {research.dicomweb}
    batch: {{ max_instances: 10, max_bytes: 32MiB }}
    retry: {{ initial: 500ms, max: 5s }}
    deidentify:
      profile: basic
      options: [retain_longitudinal_modified_dates]
      safe_private: [ {{ group: 0x0009, creator: "ACME SAFE", element: 0x10 }} ]
"""
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="1s",
                         extra_yaml=research_yaml).start()

    def dest_states(uid):
        rc, out, err = gw.run_cli("study", uid, "--json")
        if rc != 0:
            return {}
        return {d["destination"]: d for d in json.loads(out)["destinations"]}

    def settled(uid, want):
        s = dest_states(uid)
        return all(s.get(n, {}).get("state") == st for n, st in want.items())

    rc, out = harness.storescu(gw.port, ct_files + us_files)
    check(rc == 0, f"storescu: {out[-500:]}")
    harness.wait_for("CT sent to both", lambda: settled(ct_uid, {"repository": "SENT",
                                                                "research": "SENT"}), 60, 0.3)
    harness.wait_for("US sent to the repository, quarantined for research",
                     lambda: settled(us_uid, {"repository": "SENT", "research": "QUARANTINED"}),
                     60, 0.3)
    us_research = dest_states(us_uid)["research"]
    check("not de-identifiable" in us_research.get("reason", "") and
          "burned-in-annotation" in us_research.get("reason", ""),
          f"US quarantined for research with its reason: {us_research}")
    check(repo.count_instances() == 4, f"repository holds 4, has {repo.count_instances()}")
    check(research.count_instances() == 3, f"research holds 3, has {research.count_instances()}")

    # What research holds, attribute by attribute.
    patients = [json.loads(l) for l in open(manifest)]
    phi = set()
    for p in patients:
        for key in ("patient_name", "patient_id", "health_number", "birth_date", "accession"):
            v = str(p.get(key) or "")
            if len(v) >= 4:
                phi.add(v)
                phi.update(x for x in v.split("^") if len(x) >= 4)
    originals = {harness.sop_instance_uid(f): f for f in ct_files}
    pseudo_uids, pseudo_pids = set(), set()
    for oid in research.get("/instances"):
        path = os.path.join(work, "r.dcm")
        open(path, "wb").write(research.get(f"/instances/{oid}/file", raw=True))
        d = dump(path)
        sop, study, series = (value(d, "0008,0018"), value(d, "0020,000d"), value(d, "0020,000e"))
        check(all(u and u.startswith("2.25.") for u in (sop, study, series)),
              f"research UIDs are 2.25 pseudonyms: {sop} {study} {series}")
        check(sop not in originals and study != ct_uid, "research UIDs differ from the originals")
        pseudo_uids.update(u for u in (sop, study, series) if u)
        check(value(d, "0012,0062") == "YES", "Patient Identity Removed = YES")
        check(bool(value(d, "0012,0063")), "De-identification Method filled")
        check("(0012,0064)" in d, "De-identification Method Code Sequence present")
        pid = value(d, "0010,0020") or ""
        check(re.fullmatch(r"P[0-9A-F]{24}", pid) is not None, f"Patient ID pseudonym: {pid!r}")
        pseudo_pids.add(pid)
        check("SAFE VALUE" in d, "the safe private attribute is kept")
        check("SECRET NOTE" not in d and "ACME OTHER" not in d, "other private attributes removed")
        hits = [v for v in phi if v in d or v.encode() in open(path, "rb").read()]
        check(not hits, f"no patient value in a research file ({len(hits)} found)")
        # Pixel Data byte for byte: find the original with the same pixel bytes.
        check(any(pixel_data(path) == pixel_data(f) for f in ct_files),
              "Pixel Data byte for byte the original's")
    check(len(pseudo_pids) == 1, f"one patient, one pseudonym: {len(pseudo_pids)}")

    # After a restart: the same patient's next study gets the same pseudonym; the key is 0600.
    gw.stop()
    key = os.path.join(gw.state_dir, "keys", "deid.key")
    mode = stat.S_IMODE(os.stat(key).st_mode)
    check(mode == 0o600 and os.path.getsize(key) == 32, f"deid key 32 bytes, 0600: {oct(mode)}")
    gw.start()
    rc, out = harness.storescu(gw.port, mr_files)
    check(rc == 0, "storescu MR")
    harness.wait_for("MR sent to both", lambda: settled(mr_uid, {"repository": "SENT",
                                                                "research": "SENT"}), 60, 0.3)
    mr_pids = set()
    for oid in research.get("/instances"):
        tags = research.get(f"/instances/{oid}/simplified-tags")
        if tags.get("Modality") == "MR":
            mr_pids.add(tags.get("PatientID"))
    check(mr_pids == pseudo_pids, f"same patient, same pseudonym after restart: {mr_pids} {pseudo_pids}")

    # No mapping in clear: pseudonyms appear neither in the log nor in the audit export.
    rc, audit_out, err = gw.run_cli("audit", "export")
    texts = {"dirgwd log": gw.log_text(), "audit export": audit_out}
    for name, text in texts.items():
        leaked = [u for u in pseudo_uids | pseudo_pids if u in text]
        check(not leaked, f"{name} names no pseudonym ({len(leaked)} found)")
        hits = harness.scan_for_phi({name: text}, manifest)
        check(not hits, f"{name}: no patient value ({hits})")
    gw.stop()
    repo.stop()
    research.stop()
    if check.failures:
        print(f"FAILED: {len(check.failures)} check(s)")
        sys.exit(1)
    log("de-identification: research 4 instances de-identified, US quarantined for research, "
        "pseudonyms consistent across a restart, none in log or audit")


if __name__ == "__main__":
    main()
