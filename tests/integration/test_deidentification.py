#!/usr/bin/env python3
"""De-identification per destination, through dirgwd, against two real Orthancs.

The regional repository ("repository") receives the identified originals; a research archive
("research", `deidentify:` with options) receives de-identified copies only:
- every research instance says Patient Identity Removed = YES with a De-identification Method
  (and its code sequence); its Study/Series/SOP Instance UIDs are 2.25 pseudonyms; Patient ID and
  name are a pseudonym; Pixel Data is byte for byte the original's; a private attribute on the
  safe list is kept (the site's, and PS3.15 Table E.3.10-1's with `retain_safe_private`) and any
  other private attribute is gone; no value of the synthetic patients
  (name, IDs, health number, birth date, accession) appears in any research file;
- a second study of the same patient, sent after a restart, gets the same pseudonymous Patient ID
  (the key persists, 0600), and the re-sent first study the same UIDs;
- the repository receives the originals unchanged (element by element);
- every synthetic modality (CT, MR, CR, DX, US, SC) goes out de-identified, and a Basic Text SR
  in the CT study (free text naming the patient, references to a CT image) goes out cleaned
  (clean_structured_content) with its references renamed to the CT image's pseudonym: they
  still resolve; no original identifying value (patient values, institution, dates, the
  original UIDs) appears anywhere in any research file's bytes;
- an ultrasound image without Burned In Annotation (a kind known to carry burned-in text) and an
  encapsulated PDF are quarantined for research only, with their reasons, and reach the
  repository;
- `dirgw deid preview` prints the changes without sending anything;
- the pseudonyms never appear in dirgwd's log or the audit export (no mapping in clear)."""

import base64
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


SR_DUMP = """(0002,0010) UI =LittleEndianExplicit
(0008,0016) UI =BasicTextSRStorage
(0008,0018) UI [{sop}]
(0008,0020) DA [{study_date}]
(0008,0050) SH [{accession}]
(0008,0060) CS [SR]
(0008,0080) LO [{institution}]
(0010,0010) PN [{name}]
(0010,0020) LO [{pid}]
(0010,0030) DA [{birth}]
(0020,000d) UI [{study}]
(0020,000e) UI [{sop}.1]
(0020,0011) IS [99]
(0020,0013) IS [1]
(0040,a040) CS [CONTAINER]
(0040,a043) SQ (Sequence with undefined length #=1)
  (fffe,e000) na (Item with undefined length #=3)
    (0008,0100) SH [11528-7]
    (0008,0102) SH [LN]
    (0008,0104) LO [Radiology Report]
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0040,a050) CS [SEPARATE]
(0040,a375) SQ (Sequence with undefined length #=1)
  (fffe,e000) na (Item with undefined length #=2)
    (0008,1115) SQ (Sequence with undefined length #=1)
      (fffe,e000) na (Item with undefined length #=2)
        (0008,1199) SQ (Sequence with undefined length #=1)
          (fffe,e000) na (Item with undefined length #=2)
            (0008,1150) UI =CTImageStorage
            (0008,1155) UI [{ref_sop}]
          (fffe,e00d) na (ItemDelimitationItem)
        (fffe,e0dd) na (SequenceDelimitationItem)
        (0020,000e) UI [{ref_series}]
      (fffe,e00d) na (ItemDelimitationItem)
    (fffe,e0dd) na (SequenceDelimitationItem)
    (0020,000d) UI [{study}]
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0040,a491) CS [COMPLETE]
(0040,a493) CS [UNVERIFIED]
(0040,a730) SQ (Sequence with undefined length #=1)
  (fffe,e000) na (Item with undefined length #=3)
    (0040,a010) CS [CONTAINS]
    (0040,a040) CS [TEXT]
    (0040,a043) SQ (Sequence with undefined length #=1)
      (fffe,e000) na (Item with undefined length #=3)
        (0008,0100) SH [121071]
        (0008,0102) SH [DCM]
        (0008,0104) LO [Finding]
      (fffe,e00d) na (ItemDelimitationItem)
    (fffe,e0dd) na (SequenceDelimitationItem)
    (0040,a160) UT [{family} was seen on {study_date}: no acute findings.]
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
"""


def make_sr(work, ct_file):
    """A Basic Text SR in the CT's study: the CT's patient values, free text naming the patient,
    and a reference to the CT image."""
    d = dump(ct_file)
    v = {k: value(d, t) or "" for k, t in (("study_date", "0008,0020"), ("accession", "0008,0050"),
                                          ("name", "0010,0010"), ("pid", "0010,0020"),
                                          ("birth", "0010,0030"), ("study", "0020,000d"),
                                          ("ref_sop", "0008,0018"), ("ref_series", "0020,000e"))}
    v["institution"] = value(d, "0008,0080") or "Lakeside General"
    v["family"] = v["name"].split("^")[0]
    v["sop"] = v["study"] + ".99.1"
    dump_path, out = os.path.join(work, "sr.dump"), os.path.join(work, "sr", "SR_00001.dcm")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    open(dump_path, "w").write(SR_DUMP.format(**v))
    subprocess.run(["dump2dcm", "+E", dump_path, out], check=True, capture_output=True)
    return out


def make_pdf(work, like):
    """An encapsulated PDF for the patient of `like`, in its own study."""
    d = dump(like)
    pdf, out = os.path.join(work, "doc.pdf"), os.path.join(work, "pdf", "DOC_00001.dcm")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    open(pdf, "wb").write(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    subprocess.run(["pdf2dcm", "+pn", value(d, "0010,0010"), "+pi", value(d, "0010,0020"),
                    "+t", "Referral letter", pdf, out], check=True, capture_output=True)
    return out


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
    args = harness.test_args(__file__)
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
    # A GE private block: Scan Pitch Ratio is in PS3.15 Table E.3.10-1 (retain_safe_private),
    # element 0x28 of the block is not.
    for f in mr_files:
        add_private(f, [(0x0043, 0x0010, "GEMS_PARM_01"), (0x0043, 0x1027, "0.984:1"),
                        (0x0043, 0x1028, "GE UNLISTED")])
    others = []
    for i, mod in enumerate(("CR", "DX", "SC")):
        uid, files = harness.synth(args.build_dir, os.path.join(work, mod.lower()), mod, 1,
                                   seed=44 + i, patient_index=9 + i, manifest=manifest,
                                   extra=["--rows", "64", "--cols", "64"])
        others.append((uid, files))
    sr_file = make_sr(work, ct_files[0])
    us_uid, us_files = harness.synth(args.build_dir, os.path.join(work, "us"), "US", 1, seed=43,
                                     patient_index=8, manifest=manifest,
                                     extra=["--rows", "32", "--cols", "32", "--frames", "2"])
    # As many ultrasound consoles write it: no Burned In Annotation at all.
    subprocess.run(["dcmodify", "-nb", "-e", "(0028,0301)"] + us_files, check=True,
                   capture_output=True)
    pdf_file = make_pdf(work, us_files[0])
    pdf_study = value(dump(pdf_file), "0020,000d")
    originals_all = ct_files + [sr_file] + [f for _, fs in others for f in fs]
    # Every identifying value of what research will receive, as the originals have them.
    identifying = set()
    for f in originals_all + mr_files:
        d = dump(f)
        for t in ("0010,0010", "0010,0020", "0010,0030", "0008,0050", "0008,0080", "0008,0020",
                  "0008,0018", "0020,000d", "0020,000e", "0020,0052"):
            v = value(d, t)
            if v and len(v) >= 6:
                identifying.add(v)
        name = value(d, "0010,0010") or ""
        identifying.update(x for x in name.split("^") if len(x) >= 4)

    repo = harness.Orthanc(work, name="repository").start()
    research = harness.Orthanc(work, name="research").start()
    research_yaml = f"""  - name: research
    type: stow-rs
    url: {research.dicomweb}
    batch: {{ max_instances: 10, max_bytes: 32MiB }}
    retry: {{ initial: 500ms, max: 5s }}
    verify: none
    deidentify:
      profile: basic
      options: [retain_longitudinal_modified_dates, clean_structured_content, retain_safe_private]
      safe_private: [ {{ group: 0x0009, creator: "ACME SAFE", element: 0x10 }} ]
"""
    # Validation is not what this test is about (the SR has no health number).
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, stable_age="1s",
                         policy_yaml="  validation: { profile: none }\n",
                         extra_yaml=research_yaml).start()

    def dest_states(uid):
        rc, out, err = gw.run_cli("study", uid, "--json")
        if rc != 0:
            return {}
        return {d["destination"]: d for d in json.loads(out)["destinations"]}

    def settled(uid, want):
        s = dest_states(uid)
        return all(s.get(n, {}).get("state") == st for n, st in want.items())

    rc, out = harness.storescu(gw.port, ct_files + [sr_file] + us_files + [pdf_file] +
                               [f for _, fs in others for f in fs])
    check(rc == 0, f"storescu: {out[-500:]}")
    for uid in [ct_uid] + [u for u, _ in others]:
        harness.wait_for("a study sent to both",
                         lambda: settled(uid, {"repository": "SENT", "research": "SENT"}), 60, 0.3)
    harness.wait_for("the PDF quarantined for research",
                     lambda: settled(pdf_study, {"repository": "SENT",
                                                 "research": "QUARANTINED"}), 60, 0.3)
    pdf_research = dest_states(pdf_study)["research"]
    check("encapsulated-document" in pdf_research.get("reason", ""),
          f"PDF quarantined for research with its reason: {pdf_research}")
    harness.wait_for("US sent to the repository, quarantined for research",
                     lambda: settled(us_uid, {"repository": "SENT", "research": "QUARANTINED"}),
                     60, 0.3)
    us_research = dest_states(us_uid)["research"]
    check("not de-identifiable" in us_research.get("reason", "") and
          "burned-in-annotation" in us_research.get("reason", ""),
          f"US quarantined for research with its reason: {us_research}")
    check(repo.count_instances() == 9, f"repository holds 9, has {repo.count_instances()}")
    check(research.count_instances() == 7, f"research holds 7, has {research.count_instances()}")
    # An operator looked at the ultrasound's frames: no identifying text. A plain release would
    # screen it again; a release after the review waives the burned-in screen for research and
    # the instances the study holds now. Only for a destination that refused it on that ground.
    rc, out, err = gw.run_cli("quarantine", "show", us_uid)
    check(rc == 0 and "quarantined for research:" in out and "burned-in-annotation" in out,
          f"quarantine show names the destination and the reason: {out} {err}")
    rc, out, err = gw.run_cli("quarantine", "list")
    check(rc == 0 and us_uid in out and "for research" in out, f"quarantine list: {out} {err}")
    rc, out, err = gw.run_cli("quarantine", "release", us_uid, "--reviewed-burned-in", "repository")
    check(rc != 0 and "not quarantined as not de-identifiable" in (out + err),
          f"a review for a destination that did not refuse it: {rc} {out} {err}")
    rc, out, err = gw.run_cli("quarantine", "release", us_uid, "--reviewed-burned-in", "research")
    check(rc == 0, f"release after a burned-in review: {rc} {out} {err}")
    harness.wait_for("the reviewed US in research", lambda: research.count_instances() == 8, 60, 0.3)
    check(settled(us_uid, {"repository": "SENT", "research": "SENT"}),
          f"US sent to research after the review: {dest_states(us_uid)}")
    # The repository receives the originals unchanged.
    for f in ct_files + [sr_file]:
        oid = repo.instance_id(harness.sop_instance_uid(f))
        check(oid and not harness.compare_datasets(open(f, "rb").read(), repo.instance_file(oid)),
              "the repository holds the original, element by element")

    # What research holds, attribute by attribute.
    patients = [json.loads(l) for l in open(manifest)]
    phi = set()
    for p in patients:
        for key in ("patient_name", "patient_id", "health_number", "birth_date", "accession"):
            v = str(p.get(key) or "")
            if len(v) >= 4:
                phi.add(v)
                phi.update(x for x in v.split("^") if len(x) >= 4)
    originals = {harness.sop_instance_uid(f): f for f in originals_all}
    pseudo_uids, pseudo_pids, ct_pids = set(), set(), set()
    research_sops, sr_refs = set(), []
    for oid in research.get("/instances"):
        path = os.path.join(work, "r.dcm")
        raw = research.get(f"/instances/{oid}/file", raw=True)
        open(path, "wb").write(raw)
        d = dump(path)
        leaked = [v for v in identifying if v.encode() in raw]
        check(not leaked, f"no original identifying value in a research file ({len(leaked)} found)")
        modality = value(d, "0008,0060")
        research_sops.add(value(d, "0008,0018"))
        if modality == "SR":
            sr_refs = re.findall(r"^\s*\(0008,1155\) UI \[([^\]]*)\]", d, re.M)
            continue
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
        if modality != "CT":
            continue
        ct_pids.add(pid)
        check("SAFE VALUE" in d, "the safe private attribute is kept")
        check("SECRET NOTE" not in d and "ACME OTHER" not in d, "other private attributes removed")
        hits = [v for v in phi if v in d or v.encode() in open(path, "rb").read()]
        check(not hits, f"no patient value in a research file ({len(hits)} found)")
        # Pixel Data byte for byte: find the original with the same pixel bytes.
        check(any(pixel_data(path) == pixel_data(f) for f in ct_files),
              "Pixel Data byte for byte the original's")
    check(len(ct_pids) == 1, f"one patient, one pseudonym: {len(ct_pids)}")
    check(len(pseudo_pids) == 5, f"five patients (the reviewed US's too), five pseudonyms: "
                                 f"{len(pseudo_pids)}")
    check(len(sr_refs) == 1 and sr_refs[0] in research_sops,
          f"the SR's reference resolves to a de-identified CT image: {sr_refs}")

    # The preview names what would change and sends nothing.
    before = research.count_instances()
    rc, out, err = gw.run_cli("deid", "preview", ct_files[0], "--destination", "research",
                              "--config", gw.config_path)
    check(rc == 0 and "(0010,0010)" in out and "(0020,000D)" in out.upper(),
          f"deid preview lists the changes: {rc} {err[-300:]}")
    check(not [v for v in identifying if v in out], "deid preview shows no identifying value")
    check(research.count_instances() == before, "deid preview sends nothing")
    rc, out, err = gw.run_cli("deid", "preview", pdf_file, "--destination", "research",
                              "--config", gw.config_path)
    check(rc == 1 and "encapsulated-document" in err, f"deid preview refuses the PDF: {rc} {err}")

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
            path = os.path.join(work, "r-mr.dcm")
            open(path, "wb").write(research.get(f"/instances/{oid}/file", raw=True))
            d = dump(path)
            check("0.984:1" in d and "GEMS_PARM_01" in d,
                  "a private attribute of the standard's safe list is kept, with its creator")
            check("GE UNLISTED" not in d, "a private attribute not on it is removed")
    check(mr_pids == ct_pids, f"same patient, same pseudonym after restart: {mr_pids} {ct_pids}")

    # No mapping in clear: pseudonyms appear neither in the log nor in the audit export.
    rc, audit_out, err = gw.run_cli("audit", "export")
    details = [base64.b64decode(v).decode("utf-8", "replace")
               for v in re.findall(r'type="dirgw-detail" value="([^"]*)"', audit_out)]
    check(any('"reviewed_burned_in":"research"' in d for d in details),
          "the burned-in review (release, destination, operator) is in the audit trail")
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
    log("de-identification: research received CT, MR, CR, DX, SC and an SR de-identified (8), "
        "US and PDF quarantined for research only, the US released after a burned-in review, SR "
        "reference resolves, pseudonyms consistent "
        "across a restart, none in log or audit")


if __name__ == "__main__":
    main()
