#!/usr/bin/env python3
"""Watched export folders (issue 12), with real parts: dirgwd watches a folder and forwards to a
real Orthanc. Into the folder go a file written by a slow writer (ten pieces over 3 s: taken
once, only when complete), plain Part-10 files, a dataset without meta header, a DICOMDIR tree
made by DCMTK's dcmmkdir, an export tree without DICOMDIR (study and series folders, with a
hidden file) and a zip; and hostile entries: a symbolic link to a DICOM file outside
the folder, a fifo, a zip with a '../' entry, a zip bomb (1 GB of zeros), a text file, and a
file deleted while it is being taken. The good studies arrive in Orthanc exactly once, every bad
entry lands in rejected/ with a reason file and counts as a refusal (dirgw status, metrics),
nothing outside the folder is read or written, and `dirgw study` / `dirgw sources` show the
folder. A 30-instance zip deleted in the middle of its intake: what was read stays, taken once,
logged once, not a rejection. Then kill -9 in the middle of a zip's intake: after a restart
nothing is lost and nothing is taken twice. Logs carry no patient value."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402


def reason(folder, name):
    try:
        with open(os.path.join(folder, "rejected", name + ".reason")) as f:
            return f.read()
    except OSError:
        return ""


def slow_write(path, data, pieces=10, seconds=3.0):
    """One file written in `pieces` writes over `seconds`, closed and reopened between pieces."""
    step = (len(data) + pieces - 1) // pieces
    for i in range(pieces):
        with open(path, "ab") as f:
            f.write(data[i * step:(i + 1) * step])
        time.sleep(seconds / pieces)


def snapshot(d):
    """Names, sizes and modification times under d (to prove nothing outside was written)."""
    out = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            out[os.path.relpath(p, d)] = (st.st_size, st.st_mtime_ns)
    return out


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, src in entries:
            with open(src, "rb") as f:
                z.writestr(zipfile.ZipInfo(name), f.read(), zipfile.ZIP_DEFLATED)


def make_bomb(path, size=1 << 30):
    """1 GB of zeros in about 1 MB (the library records the sizes in the headers)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("bomb.dcm", "w", force_zip64=True) as f:
            chunk = bytes(1 << 22)
            for _ in range(size // len(chunk)):
                f.write(chunk)


def make_dicomdir_tree(staging, files):
    os.makedirs(os.path.join(staging, "DICOM"))
    for i, src in enumerate(files, 1):
        shutil.copy(src, os.path.join(staging, "DICOM", f"IM{i:06d}"))
    subprocess.run(["dcmmkdir", "+r", "+I", "+D", "DICOMDIR", "DICOM"], cwd=staging, check=True,
                   capture_output=True)


def strip_meta(src, dst):
    """A dataset without preamble and meta header, implicit VR little endian (old consoles)."""
    subprocess.run(["dcmconv", "-F", "+ti", src, dst], check=True, capture_output=True)


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()
    t_start = time.time()

    work = harness.tempdir("dirgw-folders-")
    manifest = os.path.join(work, "manifest.jsonl")

    def study(name, modality, n, seed):
        uid, files = harness.synth(args.build_dir, os.path.join(work, "synth", name), modality, n,
                                   seed=seed,
                                   patient_index=seed - 30, manifest=manifest)
        return uid, files

    plain_uid, plain = study("plain", "CT", 3, 31)      # two copied, one by the slow writer
    tree_uid, tree = study("tree", "CR", 2, 32)         # a DICOMDIR tree
    zip_uid, zipped = study("zip", "MR", 2, 33)         # a zip
    raw_uid, raw = study("raw", "CR", 1, 34)            # without meta header
    out_uid, outside_files = study("outside", "CR", 1, 35)  # must never arrive
    gone_uid, gone = study("gone", "CR", 1, 36)         # deleted while being taken
    kill_uid, kill = study("kill", "CT", 40, 37)        # zip taken across a kill -9
    del_uid, deleted = study("deleted", "CT", 30, 38)   # zip deleted while it is being read
    exp_uid, exported = study("export", "CT", 3, 39)    # an export tree without DICOMDIR
    good = {plain_uid: 3, tree_uid: 2, zip_uid: 2, raw_uid: 1, exp_uid: 3}

    folder = os.path.join(work, "export")
    outside = os.path.join(work, "outside")
    os.makedirs(folder)
    os.makedirs(outside)
    outside_file = os.path.join(outside, "secret.dcm")
    shutil.copy(outside_files[0], outside_file)
    before_outside = snapshot(outside)

    repo = harness.Orthanc(work).start()
    ingest = (f"  folders:\n    - {{ path: {folder}, name: export, after: move, done_days: 7, "
              f"settle: 1s, rescan: 2s }}\n")
    metrics_port = harness.free_port()
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, ingest_yaml=ingest,
                         extra_yaml=f"metrics: {{ enabled: true, bind: 127.0.0.1, "
                                    f"port: {metrics_port} }}\n").start()

    # --- hostile entries first: refused without settling, never opened
    os.symlink(outside_file, os.path.join(folder, "link.dcm"))
    os.mkfifo(os.path.join(folder, "pipe"))
    make_zip(os.path.join(work, "evil.zip"), [("../../outside/evil.dcm", outside_files[0])])
    t_bomb = time.time()
    make_bomb(os.path.join(work, "bomb.zip"))
    log(f"zip bomb: {os.path.getsize(os.path.join(work, 'bomb.zip'))} bytes for 1 GiB, made in "
        f"{time.time() - t_bomb:.1f}s")
    with open(os.path.join(work, "notes.txt"), "w") as f:
        f.write("Discharge summary, plain text, not DICOM.\n" * 20)
    for n in ("evil.zip", "bomb.zip", "notes.txt"):
        os.rename(os.path.join(work, n), os.path.join(folder, n))

    # --- good entries
    shutil.copy(plain[0], os.path.join(folder, "a.dcm"))
    shutil.copy(plain[1], os.path.join(folder, "b.dcm"))
    make_dicomdir_tree(os.path.join(work, "cd"), tree)
    os.rename(os.path.join(work, "cd"), os.path.join(folder, "cd"))
    # Entry names in the exporter's language (UTF-8 flag): dirgwd runs in the "C" locale.
    make_zip(os.path.join(work, "mr.zip"),
             [(f"MR/Müller {i} é.dcm" if i == 0 else f"MR/{i}.dcm", p)
              for i, p in enumerate(zipped)])
    os.rename(os.path.join(work, "mr.zip"), os.path.join(folder, "mr.zip"))
    strip_meta(raw[0], os.path.join(work, "RAW0001"))
    os.rename(os.path.join(work, "RAW0001"), os.path.join(folder, "RAW0001"))
    # An export tree as PACS and EMR exports write them: study/series folders, no DICOMDIR, file
    # names without an extension, and a desktop's hidden file.
    exp = os.path.join(work, "exp")
    for i, p in enumerate(exported):
        series = os.path.join(exp, "STUDY0001", f"SER{i // 2 + 1:04d}")
        os.makedirs(series, exist_ok=True)
        shutil.copy(p, os.path.join(series, f"IM{i + 1:06d}"))
    with open(os.path.join(exp, ".DS_Store"), "wb") as f:
        f.write(b"\0" * 64)
    os.rename(exp, os.path.join(folder, "exp"))

    # A file deleted while it is taken: written, then removed right when it settles. Either it was
    # taken whole before the removal or it is gone; never half of it, never an error loop.
    shutil.copy(gone[0], os.path.join(folder, "gone.dcm"))
    def remove_gone():
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, "gone.dcm"))
    threading.Timer(1.0, remove_gone).start()

    # The slow writer: ten pieces over 3 s, closing between pieces (IN_CLOSE_WRITE each time).
    with open(plain[2], "rb") as f:
        slow_data = f.read()
    slow_write(os.path.join(folder, "slow.dcm"), slow_data)

    harness.wait_for("the good studies in Orthanc",
                     lambda: repo.count_instances() >= sum(good.values()), 60, 0.5)
    harness.wait_for("the hostile entries in rejected/",
                     lambda: all(reason(folder, n) for n in
                                 ("link.dcm", "pipe", "evil.zip", "bomb.zip", "notes.txt")), 30, 0.5)
    time.sleep(3)  # a further rescan: nothing more may arrive

    count = repo.count_instances()
    gone_taken = repo.instance_id(harness.sop_instance_uid(gone[0])) is not None
    expected = sum(good.values()) + (1 if gone_taken else 0)
    check(count == expected, f"Orthanc holds {count} instances, expected exactly {expected}")
    for files in (plain, tree, zipped, raw, exported):
        for p in files:
            uid = harness.sop_instance_uid(p)
            check(repo.instance_id(uid) is not None, f"instance {uid} is not in Orthanc")
    check(repo.instance_id(harness.sop_instance_uid(outside_files[0])) is None,
          "the file outside the folder (behind a symlink or a ../ zip entry) reached Orthanc")
    st = gw.status()
    check(st["catalog"]["instances"] == expected,
          f"catalog holds {st['catalog']['instances']} instances, expected {expected} (taken twice?)")

    for name, code in (("link.dcm", "symlink"), ("pipe", "fifo"), ("evil.zip", "zip_entry_path"),
                       ("bomb.zip", "zip_limits"), ("notes.txt", "not_dicom")):
        check(f"reason: {code}" in reason(folder, name),
              f"{name}: rejected/ reason is {reason(folder, name)!r}, expected {code}")
    for name in ("a.dcm", "b.dcm", "slow.dcm", "cd", "mr.zip", "RAW0001", "exp"):
        check(os.path.exists(os.path.join(folder, "done", name)), f"{name} not moved to done/")
        check(not os.path.exists(os.path.join(folder, name)), f"{name} still in the folder")
    slow_done = os.path.join(folder, "done", "slow.dcm")
    check(os.path.exists(slow_done) and os.path.getsize(slow_done) == len(slow_data),
          "the slow writer's file was not taken whole")
    check(not reason(folder, "slow.dcm"), "the slow writer's file was rejected (taken too early?)")
    leftover = sorted(n for n in os.listdir(folder) if n not in ("done", "rejected", "gone.dcm"))
    check(leftover == [], f"entries left in the folder: {leftover}")
    check(snapshot(outside) == before_outside, "something outside the folder changed")
    check(not os.path.exists(os.path.join(work, "evil.dcm")) and
          not os.path.exists(os.path.join(outside, "evil.dcm")), "a ../ zip entry was written")
    bomb_logs = [l for l in gw.log_text().splitlines() if "reason=zip_limits" in l]
    check(len(bomb_logs) == 1, f"the zip bomb was logged {len(bomb_logs)} times, expected once")

    rc, out, err = gw.run_cli("study", plain_uid)
    check(rc == 0 and "source: folder:export" in out, f"dirgw study shows no folder source: {out}{err}")
    rc, out, err = gw.run_cli("sources", "--json")
    src = json.loads(out) if rc == 0 else {}
    f0 = (src.get("folders") or [{}])[0]
    check(f0.get("name") == "export" and f0.get("rejected") == 5 and f0.get("taken", 0) >= 6,
          f"dirgw sources: {out}{err}")
    rc, out, err = gw.run_cli("sources")
    check(rc == 0 and "export" in out, f"dirgw sources (table): {out}{err}")
    # Rejections are refusals too: beside C-STORE refusals in dirgw status, and in the metrics.
    rf = st.get("refusals", {})
    last = rf.get("last", {})
    check(rf.get("count") == 5 and last.get("source") == "folder:export" and
          last.get("reason_code") == "folder-rejected",
          f"dirgw status counts the 5 rejections as refusals: {rf}")
    rc, out, err = gw.run_cli("status")
    check("refused input: 5" in out and "folder:export" in out, f"dirgw status prints them: {out}")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        scraped = r.read().decode()
    check('dirgw_instances_refused_total{reason="folder"} 5' in scraped,
          "metrics count the rejections: " +
          str([l for l in scraped.splitlines() if "refused_total" in l]))

    # --- a zip deleted while it is being read: what was read stays, nothing is taken twice,
    # logged once, neither done/ nor rejected/.
    make_zip(os.path.join(work, "del.zip"), [(f"CT/{i}.dcm", p) for i, p in enumerate(deleted)])
    base = gw.status()["catalog"]["instances"]
    log_before = len(gw.log_text().splitlines())
    os.rename(os.path.join(work, "del.zip"), os.path.join(folder, "del.zip"))
    harness.wait_for("the zip's intake to start",
                     lambda: gw.status()["catalog"]["instances"] > base, 30, 0.05)
    try:
        os.unlink(os.path.join(folder, "del.zip"))
        log(f"del.zip deleted while {gw.status()['catalog']['instances'] - base} of 30 were in")
        mid_read = True
    except FileNotFoundError:
        log("del.zip was taken whole before it could be deleted (not a mid-read deletion)")
        mid_read = False
    harness.wait_for("the deleted zip's objects in Orthanc",
                     lambda: repo.count_instances() >= expected + 30, 60, 0.5)
    time.sleep(3)  # a further rescan: nothing more may arrive
    expected += 30
    st = gw.status()
    check(repo.count_instances() == expected and st["catalog"]["instances"] == expected,
          f"deleted zip: Orthanc {repo.count_instances()}, catalog {st['catalog']['instances']}, "
          f"expected {expected} (every object read once)")
    if mid_read:
        check(not os.path.exists(os.path.join(folder, "done", "del.zip")) and
              not reason(folder, "del.zip"), "the deleted zip went to neither done/ nor rejected/")
    else:
        # On a busy machine the intake may finish before the test's unlink: then it was a whole
        # zip, taken like any other.
        check(os.path.exists(os.path.join(folder, "done", "del.zip")) and
              not reason(folder, "del.zip"), "a zip taken whole went to done/")
    said = [l for l in gw.log_text().splitlines()[log_before:]
            if "entry deleted while being read" in l]
    check(len(said) == (1 if mid_read else 0),
          f"the deletion was logged {len(said)} times, expected {1 if mid_read else 0}")
    check(st.get("refusals", {}).get("count") == 5, "a deleted entry is not a refusal")
    log(f"first part done in {time.time() - t_start:.0f}s: {count} instances, sources {f0}")

    # --- kill -9 while a 40-instance zip is being taken; restart; all arrive, none twice
    make_zip(os.path.join(work, "kill.zip"), [(f"CT/{i}.dcm", p) for i, p in enumerate(kill)])
    base = gw.status()["catalog"]["instances"]
    os.rename(os.path.join(work, "kill.zip"), os.path.join(folder, "kill.zip"))
    harness.wait_for("the zip's intake to start",
                     lambda: gw.status()["catalog"]["instances"] > base, 30, 0.05)
    gw.kill9()
    in_folder = os.path.exists(os.path.join(folder, "kill.zip"))
    log(f"killed -9 during the zip's intake (zip still in the folder: {in_folder})")
    gw.start()
    harness.wait_for("the killed zip's study in Orthanc",
                     lambda: repo.count_instances() >= expected + 40, 90, 0.5)
    harness.wait_for("kill.zip in done/",
                     lambda: os.path.exists(os.path.join(folder, "done", "kill.zip")), 30, 0.5)
    time.sleep(3)
    st = gw.status()
    check(repo.count_instances() == expected + 40,
          f"after kill -9: Orthanc holds {repo.count_instances()}, expected {expected + 40}")
    check(st["catalog"]["instances"] == expected + 40,
          f"after kill -9: catalog holds {st['catalog']['instances']}, expected {expected + 40}")
    check(not os.path.exists(os.path.join(folder, "done", "kill.zip-1")),
          "the killed zip was taken twice")

    texts = {"dirgwd.log": gw.log_text()}
    for name in os.listdir(os.path.join(folder, "rejected")):
        if name.endswith(".reason"):
            texts[name] = reason(folder, name[:-len(".reason")])
    hits = harness.scan_for_phi(texts, manifest)
    check(not hits, f"patient values in logs or reason files: {hits}")

    gw.stop()
    log(f"done in {time.time() - t_start:.0f}s")
    return check.finish("folders: all checks passed")


if __name__ == "__main__":
    sys.exit(main())
