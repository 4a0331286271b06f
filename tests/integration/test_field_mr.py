#!/usr/bin/env python3
"""More files from the field: MR and RT objects other projects test with, through both doors and
the de-identification (the companion of test_field_corpus.py, which uses pydicom's files).

The files come from three Debian packages' test data, fetched with `apt-get download` and
unpacked with `dpkg -x` (nothing installed, no dependency pulled in) into a cache
(/var/cache/dirgw-tests/field-debs, or $DIRGW_FIELD_CACHE), before the test enters its private
network namespace:
- heudiconv: Siemens MR of several scanner generations (VB, VE, XA), with CSA headers
  (private (0029,xx10/20) holding the SV10 structure and the ASCCONV protocol text), DWI
  series of 3.9 MB, and a Siemens "Phoenix document": an Enhanced SR carrying the protocol;
- python3-nibabel: Siemens mosaic and DWI (CSA headers), a Philips Enhanced MR multi-frame of
  23 MB (deep functional-group sequences, Philips private sequences), a JPEG 2000 Siemens MR,
  an object without SOP Class UID;
- octave-dicom: a GE CT stored as Secondary Capture, an RLE palette-colour US cine, a Varian RT
  Structure Set whose SOP Instance UID has a component with a leading zero, GDCM's image with an
  icon.

Every file goes to dirgwd by C-STORE (dcmsend) and again through a watched folder. A research
destination asks for de-identification (basic profile, Clean Structured Content). Then:
- every file is accounted for (stored, or refused with a reason; dcmsend itself will not send
  the two files it finds invalid, and the folder takes one of them);
- every instance reaches the repository, and every study is SENT to research or QUARANTINED
  with a reason;
- what research receives carries none of the originals' identifying values nor UIDs, no CSA
  header, no protocol text, nothing of private group 0029, and an empty birth date; the
  Enhanced MR and the Enhanced SR are among what it receives;
- no identifying value in dirgwd's log (outside UIDs) nor in a .reason file.

Prints a figures line: files, C-STORE outcomes, folder taken/rejected, research instances."""

import glob
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_field_corpus import (  # noqa: E402
    ORIGINAL_UIDS, corpus_gateway, dcmsend, drop_files, dump_values, every_study_settled,
    folder_outcome, identifying_values, research_destination, start_repositories)

CACHE = os.environ.get("DIRGW_FIELD_CACHE", "/var/cache/dirgw-tests/field-debs")
# Package: the folder of its test data inside the package.
PACKAGES = {
    "heudiconv": "usr/lib/python3/dist-packages/heudiconv/tests/data",
    "python3-nibabel": "usr/lib/python3/dist-packages/nibabel/nicom/tests/data",
    "octave-dicom": "usr/share/octave/packages",
}
# dcmsend checks a file before it sends it, and will not send these.
NOT_SENDABLE = {
    "rtstruct.dcm": "SOP Instance UID with a component that has a leading zero",
    "decimal_rescale.dcm": "no SOP Class UID",
}
MUST_REFUSE = {"decimal_rescale.dcm": "no SOP Class UID"}  # by the folder, with this reason
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"


def fetch_corpus():
    """The packages' DICOM files, unpacked once into CACHE/corpus (names: the path inside the
    test data, '/' as '__'; gzipped files uncompressed). Runs before the private namespace."""
    corpus = os.path.join(CACHE, "corpus")
    if os.path.isfile(os.path.join(corpus, ".complete")):
        return sorted(glob.glob(os.path.join(corpus, "*.dcm")))
    os.makedirs(CACHE, exist_ok=True)
    for pkg in PACKAGES:
        if glob.glob(os.path.join(CACHE, f"{pkg}_*.deb")):
            continue
        cmd = ["apt-get", "download", "-q", pkg]
        if subprocess.run(cmd, cwd=CACHE, capture_output=True).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)
            p = subprocess.run(cmd, cwd=CACHE, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"apt-get download {pkg} failed: {p.stderr[-500:]}")
    shutil.rmtree(corpus, True)
    os.makedirs(corpus)
    unpacked = os.path.join(CACHE, "unpacked")
    shutil.rmtree(unpacked, True)
    for pkg, data in PACKAGES.items():
        deb = sorted(glob.glob(os.path.join(CACHE, f"{pkg}_*.deb")))[-1]
        subprocess.run(["dpkg-deb", "-x", deb, unpacked], check=True)
        root = os.path.join(unpacked, data)
        for dirpath, _, names in os.walk(root):
            for n in names:
                src = os.path.join(dirpath, n)
                rel = os.path.relpath(src, root).replace(os.sep, "__")
                if n.lower().endswith(".dcm"):
                    shutil.copy(src, os.path.join(corpus, rel))
                elif n.lower().endswith(".dcm.gz"):
                    with gzip.open(src) as i, open(os.path.join(corpus, rel[:-3]), "wb") as o:
                        shutil.copyfileobj(i, o)
    shutil.rmtree(unpacked, True)
    open(os.path.join(corpus, ".complete"), "w").close()
    return sorted(glob.glob(os.path.join(corpus, "*.dcm")))


def base(path):
    """The file's own name (the last component of its flattened path)."""
    return os.path.basename(path).split("__")[-1]


def main():
    files = fetch_corpus() if os.environ.get("DIRGW_NETNS") != "1" else None
    args = harness.test_args(__file__)
    files = files or sorted(glob.glob(os.path.join(CACHE, "corpus", "*.dcm")))
    check = harness.Checks()
    t_start = time.time()
    names = {base(f) for f in files}
    wanted = set(NOT_SENDABLE) | {"philips_mprage.dcm", "99+PhoenixDocument+00001.dcm",
                                  "siemens_dwi_0.dcm", "US-PAL-8-10x-echo.dcm",
                                  "slicethickness_empty_string.dcm"}
    if not check(len(files) >= 20 and wanted <= names,
                 f"the corpus has the files this test names ({len(files)} found, missing "
                 f"{sorted(wanted - names)})"):
        return check.finish("")

    work, folder, repo, research = start_repositories("dirgw-field-mr-")
    gw = corpus_gateway(args.build_dir, work, repo, folder,
                        research_destination(research.dicomweb))

    # 1. C-STORE, one association per file.
    outcome = {f: dcmsend(gw.port, f) for f in files}
    if not check(gw.process.alive(), "dirgwd alive after the C-STOREs"):
        return check.finish("")
    for f, o in outcome.items():
        if base(f) in NOT_SENDABLE:
            check(o == "not sent", f"{base(f)}: dcmsend does not send it "
                                   f"({NOT_SENDABLE[base(f)]}): {o}")
        else:
            check(o == "stored", f"{base(f)}: stored over C-STORE: {o}")
    counts = {k: sum(1 for v in outcome.values() if v == k) for k in ("stored", "refused",
                                                                      "not sent")}

    # 2. The folder.
    dropped = drop_files(folder, files)
    done, rejected = folder_outcome(folder)
    for name, f in dropped.items():
        if base(f) in MUST_REFUSE:
            check(name in rejected and MUST_REFUSE[base(f)] in rejected[name],
                  f"{base(f)} refused by the folder ({MUST_REFUSE[base(f)]}): "
                  f"{rejected.get(name, '-')[:200]}")
        else:
            check(name in done, f"{base(f)} taken by the folder: {rejected.get(name, '-')[:200]}")

    # 3. Every study settles for both destinations.
    harness.wait_for("every study settled for both destinations", lambda: every_study_settled(gw),
                     300, 1)
    rc, out, err = gw.run_cli("studies", "--json", "--limit", "1000")
    check(rc == 0, f"dirgw studies: {err}")
    catalog_uids = set()
    quarantined = 0
    for s in json.loads(out)["studies"] if rc == 0 else []:
        rc, detail, err = gw.run_cli("study", s["study_uid"], "--json")
        if not check(rc == 0, f"dirgw study: {err}"):
            continue
        detail = json.loads(detail)
        for d in detail["destinations"]:
            if d["destination"] == "repository":
                check(d["state"] == "SENT", f"{s['study_uid']}: repository {d['state']}")
            else:
                quarantined += d["state"] == "QUARANTINED"
                check(d["state"] == "SENT" or (d["state"] == "QUARANTINED" and d.get("reason")),
                      f"{s['study_uid']}: research {d['state']} {d.get('reason', '')}")
        catalog_uids |= {i["sop_instance_uid"] for i in detail["instance_list"]}
    expected = {dump_values(f, ["0008,0018"]).get("0008,0018", b"").rstrip(b"\0 ").decode()
                for f in files if base(f) not in MUST_REFUSE}
    check(expected <= catalog_uids, f"every file taken is in the catalog: missing "
                                    f"{sorted(expected - catalog_uids)[:3]}")
    repo_uids = {repo.get(f"/instances/{oid}/simplified-tags").get("SOPInstanceUID")
                 for oid in repo.get("/instances")}
    check(catalog_uids <= repo_uids, f"every catalog instance in the repository: missing "
                                     f"{sorted(catalog_uids - repo_uids)[:3]}")

    # 4. Research: nothing identifying. A birth date is searched for as a value only through
    # (0010,0030) itself: the corpus's dummy birth date 19000101 is also the dummy date the
    # profile writes in other date attributes.
    identifying, uids = set(), set()
    for f in files:
        identifying |= identifying_values(f)
        for v in dump_values(f, ORIGINAL_UIDS).values():
            v = v.rstrip(b"\0 ")
            if len(v) >= 10:
                uids.add(v)
    birth_dates = {dump_values(f, ["0010,0030"]).get("0010,0030", b"").strip() for f in files}
    identifying -= birth_dates
    check(len(identifying) >= 15, f"the corpus has identifying values to look for: "
                                  f"{len(identifying)}")
    research_ids = research.get("/instances")
    classes = set()
    for oid in research_ids:
        data = research.get(f"/instances/{oid}/file", raw=True)
        tags = research.get(f"/instances/{oid}/simplified-tags")
        classes.add(tags.get("SOPClassUID"))
        what = f"research {oid} ({tags.get('SOPClassUID')}, {tags.get('Manufacturer')})"
        check(tags.get("PatientIdentityRemoved") == "YES", f"{what}: Patient Identity Removed")
        check(not tags.get("PatientBirthDate"), f"{what}: birth date emptied")
        no_new_uids = re.sub(rb"2\.25\.[0-9]+", b"", data)
        hits = [v for v in identifying if v in (no_new_uids if v.isdigit() else data)]
        check(not hits, f"{what}: identifying value(s) of the originals: {hits[:3]}")
        check(not [v for v in uids if v in data], f"{what}: an original UID in its bytes")
        check(b"SV10" not in data and b"ASCCONV" not in data,
              f"{what}: no Siemens CSA header, no protocol text")
        groups = {g for g, _ in harness.dataset_elements(data)}
        check(0x0029 not in groups, f"{what}: nothing of private group 0029")
    check(len(research_ids) >= 14, f"research received the de-identifiable part: "
                                   f"{len(research_ids)} instances")
    check({ENHANCED_MR, ENHANCED_SR} <= classes,
          f"the Philips Enhanced MR and the Siemens Enhanced SR reached research: {classes}")

    # 5. No patient value in dirgwd's log (UIDs are logged: a date inside one is no leak) nor in
    # a .reason file.
    dlog = re.sub(rb"[0-9]+(\.[0-9]+)+", b"", gw.log_text().encode("utf-8", "replace"))
    texts = {"dirgwd.log": dlog}
    texts.update({f"rejected/{n}.reason": r.encode() for n, r in rejected.items()})
    for name, text in texts.items():
        hits = [v for v in identifying | (birth_dates - {b""}) if v in text]
        check(not hits, f"{name}: identifying value(s) of the originals: {hits[:3]}")
    check(gw.stop() == 0, "dirgwd stops cleanly")
    return check.finish(f"field MR: {len(files)} files; C-STORE {counts}; folder {len(done)} "
                        f"taken, {len(rejected)} rejected; research {len(research_ids)} "
                        f"instances ({quarantined} studies quarantined for it, with reasons); "
                        f"{time.time() - t_start:.0f}s")

if __name__ == "__main__":
    sys.exit(main())
