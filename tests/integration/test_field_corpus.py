#!/usr/bin/env python3
"""Files from the field, not from tools/synth, through both doors and the de-identification.

The corpus is pydicom's test data as Debian ships it (package python3-pydicom, installed by
`make deps`): about 90 objects written by GE, Siemens, Philips, Toshiba, Agfa, Mortara, OFFIS,
GDCM and others over twenty years. Nine transfer syntaxes (implicit and explicit little endian,
explicit big endian, deflate, JPEG baseline, extended, lossless, JPEG-LS, JPEG 2000, RLE);
Japanese, Korean, Chinese, Arabic, Hebrew, Greek, Russian and Latin character sets, with ISO
2022 escapes; SR, RT, segmentation, waveform; private sequences, UN sequences, odd lengths;
files without meta header, with a meta header that lacks its group length or contradicts its
dataset, a gzip trailer after a deflate stream; truncated and broken files; and a CD tree with a
DICOMDIR of files without extension.

Every file goes to dirgwd by C-STORE (dcmsend, which proposes each file's own transfer syntax,
as a PACS does) and again through a watched folder, and the CD tree through the folder; then
the corpus is put in a PACS that cannot push (DCMTK's dcmqrscp) and pulled from it, once with
C-MOVE and once with C-GET. A
research destination asks for de-identification (basic profile, Clean Structured Content), and
an archive over C-STORE (DCMTK's storescp) takes uncompressed objects only, as many archives do.
Then:
- dirgwd never stops, and stops cleanly at the end;
- every file is accounted for: C-STORE answered with success (the instance is in the
  catalog) or with a failure status dirgwd counted as a refusal; in the folder, every entry is
  in done/ or in rejected/ with a .reason;
- what must be taken is taken: files DCMTK reads and the C-STORE door accepts are not refused by
  the folder because of their meta header (no group length, UIDs left over from an edit of the
  dataset), a missing meta header in explicit VR, or a gzip trailer after a deflate stream; the
  rewritten meta headers are logged;
- what is broken is refused with a reason (truncated files, no SOP Class UID);
- every instance in the catalog reaches the repository, by SOP Instance UID;
- for research, every study ends SENT or QUARANTINED with a reason; every research instance
  says Patient Identity Removed, and no identifying value of any original (patient name
  components, IDs, birth date, accession number, physicians, original UIDs) appears anywhere in
  its bytes;
- the archive receives every object, the compressed ones decompressed (JPEG, JPEG-LS and RLE by
  DCMTK; JPEG 2000, which Debian's DCMTK cannot decode, by OpenJPEG); every study ends SENT
  there, and the MR that the corpus holds in nine encodings arrives with the uncompressed
  original's pixels;
- no patient value of the corpus appears in dirgwd's log or in a .reason file;
- pulled with C-MOVE and with C-GET, every object the PACS holds reaches the repository and every
  study is complete: with C-GET the PACS can only send on contexts we proposed, and it does not
  report SOP classes, so the RT plan, structure set and ECG need their modalities' classes."""

import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402
from test_pull import Pacs  # noqa: E402

CORPUS = "/usr/lib/python3/dist-packages/pydicom/data"

# Read by DCMTK and accepted over C-STORE, so the folder must take them too (the comment says
# what about each one used to stop the folder, or is unusual).
MUST_TAKE = {
    "rtplan.dcm": "meta header's SOP Instance UID left over from an edit",
    "rtdose.dcm": "meta header's SOP Instance UID left over from an edit",
    "rtdose_expb.dcm": "the same, big endian",
    "badVR.dcm": "meta header's SOP Instance UID left over from an edit",
    "chrJapMulti.dcm": "meta header's SOP Instance UID left over from an edit",
    "ExplVR_LitEndNoMeta.dcm": "explicit VR little endian without meta header",
    "image_dfl.dcm": "a gzip trailer after the deflate stream",
    "CT_small.dcm": "GE CT",
    "MR_small_bigendian.dcm": "explicit big endian",
    "JPEG2000.dcm": "JPEG 2000",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS",
    "SC_rgb_rle_16bit_2frame.dcm": "RLE, two frames",
    "liver_1frame.dcm": "segmentation",
    "waveform_ecg.dcm": "12-lead ECG",
    "chrH31.dcm": "Japanese, ISO 2022 escapes",
}
# Broken: refused by the folder, with a reason.
MUST_REFUSE = {"MR_truncated.dcm", "rtplan_truncated.dcm", "priv_SQ.dcm"}

# Identifying attributes searched for in what research receives. Institution and station names
# are left out: in this corpus some equal the manufacturer's name, which research keeps.
IDENTIFYING = ["0010,0010", "0010,0020", "0010,0030", "0008,0050", "0008,0090", "0008,1050",
               "0008,1070", "0010,1000", "0010,1001"]
ORIGINAL_UIDS = ["0008,0018", "0020,000d", "0020,000e"]
NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def dump_values(path, tags):
    """tag -> raw value bytes (as written, in the file's character set) of the top-level elements;
    {} when DCMTK cannot read the file."""
    args = ["dcmdump", "-q", "-Un", "+L", "+sd"]
    for t in tags:
        args += ["+P", t]
    p = subprocess.run(args + [path], capture_output=True)
    out = {}
    for line in p.stdout.split(b"\n"):
        m = re.match(rb"\s*\(([0-9a-f]{4},[0-9a-f]{4})\) [A-Z][A-Z] \[(.*)\]", line)
        if m and m.group(1).decode() not in out:
            out[m.group(1).decode()] = m.group(2)
    return out


def identifying_values(path):
    """The values (bytes) that must not reach research: names split into components."""
    values = set()
    for tag, v in dump_values(path, IDENTIFYING).items():
        parts = re.split(rb"[\^=\\]", v) if tag in ("0010,0010", "0008,0090", "0008,1050",
                                                     "0008,1070", "0010,1001") else [v]
        for part in parts:
            part = part.strip()
            if len(part) >= 5:
                values.add(part)
    return values


def sop_uid(path):
    return dump_values(path, ["0008,0018"]).get("0008,0018", b"").rstrip(b"\0 ").decode(
        "ascii", "replace") or None


def dcmsend(port, path):
    p = subprocess.run(["dcmsend", "-v", "-aet", "PACS1", "-aec", "DIRGW", "127.0.0.1", str(port),
                        path], capture_output=True, text=True, errors="replace", timeout=120)
    out = p.stdout + p.stderr
    if re.search(r"\* with status (SUCCESS|WARNING)\s*:\s*1", out):
        return "stored"
    if re.search(r"\* with status (FAILURE|ERROR)\s*:\s*1", out):
        return "refused"
    return "not sent"  # dcmsend could not read the file or found no presentation context


def start_repositories(prefix):
    """A work directory with a watched folder `drop`, and two real Orthancs: the repository and
    a research destination. Returns (work, folder, repository, research)."""
    work = harness.tempdir(prefix)
    folder = os.path.join(work, "drop")
    os.makedirs(folder)
    return (work, folder, harness.Orthanc(work, name="repository").start(),
            harness.Orthanc(work, name="research").start())


def corpus_gateway(build_dir, work, repo, folder, extra_yaml):
    """dirgwd for the field corpora: the repository, a watched folder, `extra_yaml`'s
    destinations; no validation profile (what these tests check is the doors and the
    de-identification). Started."""
    return harness.Gateway(
        build_dir, work, repo.dicomweb, stable_age="1s", batch_max=20,
        policy_yaml="  validation: { profile: none }\n",
        ingest_yaml=f"  folders:\n    - {{ path: {folder}, name: drop, settle: 300ms, "
                    f"rescan: 2s }}\n",
        extra_yaml=extra_yaml).start()


def research_destination(url):
    """A destination that de-identifies (basic profile, Clean Structured Content)."""
    return f"""  - name: research
    type: stow-rs
    url: {url}
    batch: {{ max_instances: 20, max_bytes: 32MiB }}
    retry: {{ initial: 500ms, max: 5s }}
    verify: none
    deidentify:
      profile: basic
      options: [clean_structured_content]
"""


def drop_files(folder, files):
    """Each file into the watched folder (written under a dot name, then renamed, as an exporter
    should): {name in the folder: the file}."""
    dropped = {}
    for i, f in enumerate(files):
        name = f"{i:03d}-{os.path.basename(f)}"
        shutil.copy(f, os.path.join(folder, "." + name))
        os.rename(os.path.join(folder, "." + name), os.path.join(folder, name))
        dropped[name] = f
    return dropped


def folder_outcome(folder):
    """Waits until the folder has moved every entry to done/ or rejected/; returns (the names in
    done/, {name: its .reason} of rejected/)."""
    harness.wait_for("the folder emptied into done/ and rejected/", lambda: not [
        n for n in os.listdir(folder) if n not in ("done", "rejected") and not n.startswith(".")],
        120, 0.5)
    done = set(os.listdir(os.path.join(folder, "done")))
    rejected_dir = os.path.join(folder, "rejected")
    rejected = {n[:-len(".reason")]: open(os.path.join(rejected_dir, n)).read()
                for n in (os.listdir(rejected_dir) if os.path.isdir(rejected_dir) else [])
                if n.endswith(".reason")}
    return done, rejected


def every_study_settled(gw):
    """No study RECEIVING, and every destination's studies SENT, QUARANTINED or FAILED with
    nothing pending."""
    st = gw.status()
    if any(s["state"] == "RECEIVING" for s in st["catalog"]["states"]):
        return False
    for d in st["destinations"]:
        final = sum(s["studies"] for s in d["states"]
                    if s["state"] in ("SENT", "QUARANTINED", "FAILED"))
        if final != st["catalog"]["studies"] or d["pending_instances"] != 0:
            return False
    return True


def pull_corpus(build_dir, work, files, retrieve, check):
    """The corpus in dcmqrscp (its Study Date made today's, for the poll's look-back), pulled by
    a gateway of its own with `retrieve` (move or get) into an Orthanc of its own."""
    work = os.path.join(work, f"pull-{retrieve}")
    copies = os.path.join(work, "corpus")
    os.makedirs(copies)
    today = time.strftime("%Y%m%d")
    dated = []
    for f in files:
        c = os.path.join(copies, os.path.basename(f))
        shutil.copy(f, c)
        subprocess.run(["dcmodify", "-nb", "-q", "-i", f"(0008,0020)={today}", c],
                       capture_output=True)
        dated.append(c)
    repo = harness.Orthanc(work, name="repository").start()
    gw = harness.Gateway(build_dir, work, repo.dicomweb, allowed_callers=("PACS1", "PACS"),
                         stable_age="1s", policy_yaml="  validation: { profile: none }\n")
    pacs = Pacs(work, gw.port)
    held = set()
    for f in dated:
        p = subprocess.run(["dcmsend", "-v", "-aet", "LOADER", "-aec", "PACS", "127.0.0.1",
                            str(pacs.port), f], capture_output=True, text=True, errors="replace")
        if re.search(r"\* with status SUCCESS\s*:\s*1", p.stdout + p.stderr):
            held.add(sop_uid(f))
    gw.reconfigure(ingest_yaml=f"  pull:\n    - {{ name: pacs, ae_title: PACS, host: 127.0.0.1, "
                               f"port: {pacs.port}, every: 2s, look_back: 1d, retrieve: {retrieve}, "
                               f"retry: {{ initial: 1s, max: 4s }}, timeout: 20s }}\n")
    gw.start()

    def in_repo():
        return {repo.get(f"/instances/{oid}/simplified-tags").get("SOPInstanceUID")
                for oid in repo.get("/instances")}
    try:
        harness.wait_for(f"every object pulled with C-{retrieve.upper()} in the repository",
                         lambda: held <= in_repo(), 90, 1)
    except Exception as e:  # reported below, with what is missing
        log(str(e))
    missing = held - in_repo()
    rc, out, err = gw.run_cli("sources", "--json")
    pulls = json.loads(out).get("pulls", [{}]) if rc == 0 else [{}]
    log(f"pull with C-{retrieve.upper()}: PACS holds {len(held)}, missing {len(missing)}; "
        f"studies complete {pulls[0].get('studies_complete')}, incomplete "
        f"{pulls[0].get('studies_incomplete')}")
    check(pulls[0].get("studies_incomplete") == 0 and not pulls[0].get("incomplete"),
          f"C-{retrieve.upper()}: no study left incomplete: {pulls[0].get('incomplete')}")
    check(len(held) >= 25 and not missing,
          f"C-{retrieve.upper()}: every object the PACS holds ({len(held)}) in the repository; "
          f"missing {sorted(missing)[:5]}")
    check(gw.stop() == 0, f"dirgwd (pull with C-{retrieve.upper()}) stops cleanly")
    pacs.process.stop()
    repo.stop()


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()
    t_start = time.time()
    if not os.path.isdir(os.path.join(CORPUS, "test_files")):
        print(f"FAIL: {CORPUS} is missing: install python3-pydicom (make deps does)")
        return 1
    files = sorted(glob.glob(os.path.join(CORPUS, "test_files", "*.dcm")) +
                   glob.glob(os.path.join(CORPUS, "test_files", "dicomdirtests", "*.dcm")) +
                   glob.glob(os.path.join(CORPUS, "charset_files", "*.dcm")))
    names = [os.path.basename(f) for f in files]
    check(len(files) >= 80 and all(n in names for n in list(MUST_TAKE) + list(MUST_REFUSE)),
          f"the corpus has the files this test names ({len(files)} found)")
    cd_tree = os.path.join(CORPUS, "test_files", "dicomdirtests")
    cd_files = [f for d in ("77654033", "98892001", "98892003")
                for f in glob.glob(os.path.join(cd_tree, d, "**", "*"), recursive=True)
                if os.path.isfile(f)]

    work, folder, repo, research = start_repositories("dirgw-corpus-")
    research_yaml = research_destination(research.dicomweb)
    # Validation is not what this test is about: no file of the corpus has a health number.
    archive_dir = os.path.join(work, "archive")
    os.makedirs(archive_dir)
    archive_port = harness.free_port()
    archive = harness.Process("storescp", ["storescp", "-aet", "ARCHIVE", "-od", archive_dir,
                                           str(archive_port)], os.path.join(work, "storescp.log"))
    research_yaml += f"""  - name: archive
    type: dimse
    dimse: {{ ae_title: ARCHIVE, host: 127.0.0.1, port: {archive_port} }}
    batch: {{ max_instances: 20, max_bytes: 32MiB }}
    retry: {{ initial: 500ms, max: 5s }}
"""
    gw = corpus_gateway(args.build_dir, work, repo, folder, research_yaml)

    # 1. C-STORE, one association per file, as the files' own transfer syntaxes.
    outcome = {}
    for f in files:
        outcome[f] = dcmsend(gw.port, f)
        if not gw.process.alive():
            check(False, f"dirgwd died after C-STORE of {os.path.basename(f)}")
            return 1
    counts = {k: sum(1 for v in outcome.values() if v == k) for k in ("stored", "refused",
                                                                      "not sent")}
    log(f"C-STORE: {counts}")
    check(counts["stored"] >= 60, f"most of the corpus is stored over C-STORE: {counts}")

    # 2. The folder: every file, then the CD tree.
    dropped = drop_files(folder, files)
    tmp_cd = os.path.join(folder, ".cd")
    for d in ("77654033", "98892001", "98892003"):
        shutil.copytree(os.path.join(cd_tree, d), os.path.join(tmp_cd, d))
    shutil.copy(os.path.join(cd_tree, "DICOMDIR"), os.path.join(tmp_cd, "DICOMDIR"))
    os.rename(tmp_cd, os.path.join(folder, "cd"))
    # The same CD with a DICOMDIR whose item lengths disagree with its sequence's (DCMTK reads
    # it; the pre-scan does not): taken as an export tree, and rejected/ says so.
    tmp_cd = os.path.join(folder, ".cd-nooffset")
    for d in ("77654033", "98892001", "98892003"):
        shutil.copytree(os.path.join(cd_tree, d), os.path.join(tmp_cd, d))
    shutil.copy(os.path.join(cd_tree, "DICOMDIR-nooffset"), os.path.join(tmp_cd, "DICOMDIR"))
    os.rename(tmp_cd, os.path.join(folder, "cd-nooffset"))

    done, rejected = folder_outcome(folder)
    for name in dropped:
        check((name in done) != (name in rejected),
              f"{name}: in done/ or rejected/ (with a reason), once")
    for name, f in dropped.items():
        base = os.path.basename(f)
        if base in MUST_TAKE:
            check(name in done, f"{base} ({MUST_TAKE[base]}) taken by the folder; reason: "
                                f"{rejected.get(name, '-')[:200]}")
        if base in MUST_REFUSE:
            check(name in rejected and "detail: " in rejected[name],
                  f"{base} refused by the folder with a reason")
        if base == "DICOMDIR-empty.dcm":
            check("reason: dicomdir_alone" in rejected.get(name, ""),
                  f"a DICOMDIR alone refused as such: {rejected.get(name, '-')[:200]}")
    check("cd" in done, f"the CD tree taken: {rejected.get('cd', '')[:200]}")
    why = rejected.get("cd-nooffset", "")
    check("reason: dicomdir_unreadable" in why and
          f"{len(cd_files)} DICOM object(s) of the tree were taken" in why,
          f"the CD with an unreadable DICOMDIR taken as an export tree, and said so: {why[:300]}")
    log(f"folder: {len(done)} taken, {len(rejected)} rejected")
    dlog = gw.log_text()
    check("meta header written again from the dataset" in dlog and
          "(0002,0003) differs from the dataset's" in dlog,
          "the rewritten meta headers are logged, with why")

    # 3. Everything settles: every study SENT to the repository, SENT or QUARANTINED for
    # research.
    harness.wait_for("every study settled for both destinations", lambda: every_study_settled(gw),
                     180, 1)
    rc, out, err = gw.run_cli("studies", "--json", "--limit", "1000")
    check(rc == 0, f"dirgw studies: {err}")
    studies = json.loads(out)["studies"] if rc == 0 else []
    catalog_uids = set()
    rows_per_uid = {}  # SOP Instance UID -> its instance rows (versions)
    archive_deliveries = {}  # SOP Instance UID -> its archive delivery
    for s in studies:
        uid = s["study_uid"]
        rc, out, err = gw.run_cli("study", uid, "--json")
        if not check(rc == 0, f"dirgw study {uid}: {err}"):
            continue
        detail = json.loads(out)
        for d in detail["destinations"]:
            if d["destination"] == "repository":
                check(d["state"] == "SENT", f"{uid}: repository {d['state']}")
            elif d["destination"] == "archive":
                check(d["state"] == "SENT" or (d["state"] == "FAILED" and d.get("reason")),
                      f"{uid}: archive {d['state']} {d.get('reason', '')}")
            else:
                check(d["state"] == "SENT" or (d["state"] == "QUARANTINED" and d.get("reason")),
                      f"{uid}: research {d['state']} {d.get('reason', '')}")
        for inst in detail["instance_list"]:
            catalog_uids.add(inst["sop_instance_uid"])
            rows_per_uid[inst["sop_instance_uid"]] = rows_per_uid.get(inst["sop_instance_uid"],
                                                                      0) + 1
            for d in inst["deliveries"]:
                if d["destination"] == "archive" and d["state"] != "superseded":
                    archive_deliveries[inst["sop_instance_uid"]] = d
    check(len(catalog_uids) >= 60, f"the catalog holds the corpus: {len(catalog_uids)} instances")

    # 3b. One file through both doors is one instance: the folder's copy (the exporter's meta
    # header, the file's own VR form) and what C-STORE stored (dcmsend's meta header, sometimes
    # implicit VR, text without extra padding) hold the same content, so the second is a
    # duplicate, not a new version sent again. Big endian is the exception: dcmsend sends it as
    # little endian, and binary values are compared as bytes (a new version, as the log says).
    copies = {}
    for f in files:
        copies[sop_uid(f)] = copies.get(sop_uid(f), 0) + 1
    by_file = {f: name for name, f in dropped.items()}
    big_endian = {f for f in files if dump_values(f, ["0002,0010"]).get(
        "0002,0010", b"").rstrip(b"\0 ").decode() == "1.2.840.10008.1.2.2"}
    both = [sop_uid(f) for f in files if outcome.get(f) == "stored" and
            by_file.get(f) in done and copies[sop_uid(f)] == 1 and f not in big_endian]
    versions = sorted(u for u in both if rows_per_uid.get(u, 0) != 1)
    check(len(both) >= 30 and not versions,
          f"every file taken by both doors is one instance: {len(both)} files, "
          f"{len(versions)} with more rows: {versions[:5]}")
    log(f"both doors: {len(both)} files, each one instance; "
        f"{gw.log_text().count('instance received again in other bytes')} copies in other bytes "
        f"known as duplicates")

    # Every C-STORE answered with success is in the catalog; every refusal is counted.
    for f, o in outcome.items():
        if o == "stored":
            check(sop_uid(f) in catalog_uids,
                  f"{os.path.basename(f)}: stored over C-STORE, in the catalog")
    st = gw.status()
    check(st["ingest"]["dicom"]["refused"] == counts["refused"],
          f"C-STORE refusals counted: {st['ingest']['dicom']['refused']} vs {counts['refused']}")
    for name, f in dropped.items():
        if name in done and sop_uid(f):
            check(sop_uid(f) in catalog_uids, f"{name}: taken by the folder, in the catalog")
    for f in cd_files:
        u = sop_uid(f)
        check(u in catalog_uids, f"CD file {os.path.relpath(f, cd_tree)} in the catalog")

    # 4. The repository holds every instance of the catalog.
    repo_uids = set()
    for oid in repo.get("/instances"):
        tags = repo.get(f"/instances/{oid}/simplified-tags")
        repo_uids.add(tags.get("SOPInstanceUID"))
    missing = catalog_uids - repo_uids
    check(not missing, f"every catalog instance in the repository; missing {len(missing)}: "
                       f"{sorted(missing)[:5]}")

    # 4b. The archive takes uncompressed objects only: it holds every instance of the catalog,
    # the compressed ones decompressed (JPEG 2000 by OpenJPEG).
    in_archive, archive_files = {}, {}
    for name in os.listdir(archive_dir):
        v = dump_values(os.path.join(archive_dir, name), ["0002,0010", "0008,0018"])
        u = v.get("0008,0018", b"").rstrip(b"\0 ").decode()
        in_archive[u] = v.get("0002,0010", b"").rstrip(b"\0 ").decode()
        archive_files[u] = os.path.join(archive_dir, name)
    check(all(ts in NATIVE for ts in in_archive.values()),
          f"the archive holds uncompressed objects only: {set(in_archive.values())}")
    for u, d in archive_deliveries.items():
        check(d["state"] == "sent" and u in in_archive,
              f"{u}: sent to the archive, and there: {d}")
    check("sent decompressed: the destination refused their compressed syntax" in gw.log_text(),
          "the batches sent decompressed say so in the log")
    j2k = {sop_uid(f) for f in files
           if dump_values(f, ["0002,0010"]).get("0002,0010", b"").rstrip(b"\0 ").decode() in
           ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")} - {None}
    check(len(j2k) >= 4, f"the corpus has JPEG 2000 objects: {len(j2k)}")
    check(j2k <= set(in_archive), f"every JPEG 2000 object is in the archive, decompressed: "
                                  f"missing {sorted(j2k - set(in_archive))}")
    # The MR in nine encodings (one SOP Instance UID; the native little-endian ones are one
    # content, the others versions, see 3b): whichever encoding the archive ends with (big
    # endian too, read here through dcmconv), its pixels are those of the uncompressed original.
    mr = os.path.join(CORPUS, "test_files", "MR_small.dcm")
    mr_uid = sop_uid(mr)
    if check(mr_uid in archive_files, "the MR is in the archive"):
        mr_le = os.path.join(work, "mr-archive-le.dcm")
        subprocess.run(["dcmconv", "+te", archive_files[mr_uid], mr_le], check=True)
        with open(mr, "rb") as a, open(mr_le, "rb") as b:
            px_a = harness.dataset_elements(a.read()).get((0x7FE0, 0x0010), (None, b""))[1]
            px_b = harness.dataset_elements(b.read()).get((0x7FE0, 0x0010), (None, b""))[1]
        # MR_small_padded.dcm carries 128 bytes of padding after the same pixels.
        check(len(px_a) == 8192 and px_b[:8192] == px_a and len(px_b) in (8192, 8320),
              f"the MR's pixels in the archive are the original's ({len(px_b)} bytes)")
    check(len(in_archive) >= 55, f"the archive holds {len(in_archive)}")
    log(f"archive: {len(in_archive)} instances, {len(j2k)} of them JPEG 2000 decompressed")

    # 5. Research: de-identified, nothing identifying left in any byte.
    identifying, uids = set(), set()
    for f in files + cd_files:
        identifying |= identifying_values(f)
        for t, v in dump_values(f, ORIGINAL_UIDS).items():
            v = v.rstrip(b"\0 ")
            if len(v) >= 10:
                uids.add(v)
    # The search itself works: the repository holds the originals, identified.
    found = 0
    for oid in repo.get("/instances")[:40]:
        data = repo.get(f"/instances/{oid}/file", raw=True)
        found += any(v in data for v in identifying)
    check(len(identifying) >= 50 and found >= 10,
          f"the search finds the originals' values in the repository's copies: {found} of 40 "
          f"({len(identifying)} values)")
    research_ids = research.get("/instances")
    check(len(research_ids) >= 30, f"research received the de-identifiable part: "
                                   f"{len(research_ids)} instances")
    for oid in research_ids:
        data = research.get(f"/instances/{oid}/file", raw=True)
        tags = research.get(f"/instances/{oid}/simplified-tags")
        check(tags.get("PatientIdentityRemoved") == "YES",
              f"research {oid}: Patient Identity Removed YES")
        # A new UID is 2.25 and 39 random digits: an identifying value of digits only (the corpus
        # has "99000") is found in one of a run's UIDs now and then, which is no leak.
        no_new_uids = re.sub(rb"2\.25\.[0-9]+", b"", data)
        hits = [v for v in identifying if v in (no_new_uids if v.isdigit() else data)]
        check(not hits, f"research {oid} ({tags.get('SOPClassUID')}): {len(hits)} identifying "
                        f"value(s) of the originals in its bytes: {hits[:3]}")
        uid_hits = [v for v in uids if v in data]
        check(not uid_hits, f"research {oid}: {len(uid_hits)} original UID(s) in its bytes")

    # 6. No patient value in dirgwd's log nor in a .reason file.
    texts = {"dirgwd.log": dlog.encode("utf-8", "replace")}
    texts.update({f"rejected/{n}.reason": r.encode() for n, r in rejected.items()})
    for name, text in texts.items():
        hits = [v for v in identifying if v in text]
        check(not hits, f"{name}: {len(hits)} patient value(s) of the corpus")

    check(gw.stop() == 0, "dirgwd stops cleanly")
    # 6b. The copies known as duplicates in other bytes left nothing behind: every received
    # object in the spool is one the catalog names (none a later start would adopt as a new
    # version), and every one the catalog keeps is there. (Derived copies are left out: an
    # intermediate copy replaced by a later stage is left in spool/derived, a known leak.)
    db = sqlite3.connect(f"file:{os.path.join(gw.state_dir, 'catalog.db')}?mode=ro", uri=True)
    kept = {r[0] for r in db.execute(
        "SELECT sha256 FROM objects WHERE purged_at IS NULL AND sha256 NOT IN "
        "(SELECT sha256 FROM derived_objects)")}
    named = {r[0] for r in db.execute("SELECT sha256 FROM objects")}
    db.close()
    on_disk = {os.path.basename(p) for p in
               glob.glob(os.path.join(gw.state_dir, "spool", "objects", "*", "*"))}
    check(on_disk <= named and kept <= on_disk,
          f"spool and catalog agree: {len(on_disk - named)} spool object(s) without a row, "
          f"{len(kept - on_disk)} row(s) without their file")
    archive.stop()
    repo.stop()
    research.stop()

    # 7. The PACS that cannot push: the same files pulled with C-MOVE, then with C-GET.
    for retrieve in ("move", "get"):
        pull_corpus(args.build_dir, work, files, retrieve, check)
    log(f"done in {time.time() - t_start:.0f}s")
    if check.failures:
        print(f"{len(check.failures)} failure(s)")
        return 1
    print(f"field corpus: all checks passed ({len(files)} files and a CD of {len(cd_files)}; "
          f"C-STORE {counts}; folder {len(done)} taken, {len(rejected)} rejected; "
          f"research {len(research_ids)} instances)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
