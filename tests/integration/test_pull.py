#!/usr/bin/env python3
"""Pulling from a PACS that cannot push (issue 12, ingest.pull), with real parts: DCMTK's
dcmqrscp is the PACS (its AE table knows dirgw's receiver as a move destination), Orthanc the
repository, dirgwd polls with C-FIND every 2 s and retrieves with C-MOVE to its own SCP.

- three studies of today are polled: all arrive in Orthanc exactly once; a fourth dated 2024
  (outside the look-back window) never does;
- a study added later arrives on the next poll; further polls retrieve nothing;
- an instance added to a study already pulled makes it be retrieved again (only the new
  instance is new to us);
- kill -9 in the middle of a 40-instance C-MOVE: after a restart nothing is lost and nothing is
  taken twice;
- a study left incomplete (one instance above ingest.dicom.max_object_size) and then deleted on
  the PACS is asked for by its UID, and given up after three answers of no match: shown in
  `dirgw sources`, not asked for again;
- `dirgw sources` (and --json) and `dirgw study` show the pull source; logs carry no patient
  value."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402


class Pacs:
    """dcmqrscp with one storage area (AE PACS) that knows DIRGW at `dirgw_port`."""

    def __init__(self, work, dirgw_port, options=()):
        """options: more dcmqrscp options (+xs: it also takes and holds JPEG lossless)."""
        self.dir = os.path.join(work, "pacs")
        self.storage = os.path.join(self.dir, "db")
        os.makedirs(self.storage)
        self.port = harness.free_port()
        self.config = os.path.join(self.dir, "dcmqrscp.cfg")
        with open(self.config, "w") as f:
            f.write(f"""NetworkTCPPort  = {self.port}
MaxPDUSize      = 16384
MaxAssociations = 16
HostTable BEGIN
dirgw = (DIRGW, 127.0.0.1, {dirgw_port})
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
PACS   {self.storage}   RW (400, 1024mb)   ANY
AETable END
""")
        self.options = list(options)
        self._start()

    def _start(self):
        # Forking mode: Debian's dcmqrscp 3.6.7 crashes after an association in --single-process.
        self.process = harness.Process("dcmqrscp", ["dcmqrscp", "-c", self.config] + self.options,
                                       os.path.join(self.dir, "dcmqrscp.log"))
        harness.wait_for("dcmqrscp to listen", self._listening, 20)
        log(f"dcmqrscp (AE PACS) on 127.0.0.1:{self.port}")

    def _port_free(self):
        import socket
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", self.port))
                return True
            except OSError:
                return False

    def wipe(self):
        """Every study deleted on the PACS: stopped, its storage emptied, started again. The
        forked children still serving an association hold the listening socket (a new dcmqrscp
        could not bind, and connections would queue on the old socket): the whole group goes."""
        pid = self.process.proc.pid
        self.process.stop()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        harness.wait_for("dcmqrscp's port to be free", self._port_free, 30, 0.2)
        shutil.rmtree(self.storage)
        os.makedirs(self.storage)
        self._start()
        time.sleep(0.5)
        if not self.process.alive():
            raise RuntimeError("dcmqrscp did not start again: " + self.process.log_text()[-2000:])

    def _listening(self):
        import socket
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def load(self, files, extra=()):
        rc, out = harness.storescu(self.port, files, calling="LOADER", called="PACS", extra=extra)
        if rc != 0:
            raise RuntimeError(f"storescu into dcmqrscp failed: {out}")


def dated(files, date):
    """The PACS holds studies of `date` (synthetic studies carry a fixed 2024 date)."""
    subprocess.run(["dcmodify", "-nb", "-q", "-m", f"StudyDate={date}"] + files, check=True)
    return files


def sources(gw, check):
    rc, out, err = gw.run_cli("sources", "--json")
    check(rc == 0, f"dirgw sources --json: {rc} {err}")
    pulls = json.loads(out).get("pulls", []) if rc == 0 else []
    return pulls[0] if pulls else {}


def retrieving_lines(gw):
    return [l for l in gw.log_text().splitlines() if "pull: retrieving study" in l or
            "pull: study grew" in l]


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()
    t_start = time.time()

    work = harness.tempdir("dirgw-pull-")
    manifest = os.path.join(work, "manifest.jsonl")
    today = time.strftime("%Y%m%d")

    def study(name, modality, n, seed, size=64, extra=()):
        uid, files = harness.synth(args.build_dir, os.path.join(work, "synth", name), modality, n,
                                   seed=seed, patient_index=seed - 40, manifest=manifest,
                                   extra=["--rows", str(size), "--cols", str(size)] + list(extra))
        return uid, files

    a_uid, a = study("a", "CT", 3, 41)
    b_uid, b = study("b", "MR", 2, 42)
    c_uid, c = study("c", "CR", 1, 43)
    old_uid, old = study("old", "CR", 1, 44)      # dated 2024: outside the window
    d_uid, d = study("d", "CT", 2, 45)            # added later
    _, b2 = study("b2", "MR", 1, 46, extra=["--study-uid", b_uid])  # B grows
    k_uid, k = study("kill", "CT", 40, 47, size=256)  # C-MOVE cut by kill -9
    g_uid, g = study("gone", "CT", 2, 48)             # left incomplete, then deleted on the PACS
    _, g_big = study("gone-big", "CT", 1, 49, size=1024, extra=["--study-uid", g_uid])
    for files in (a, b, c, d, b2, k, g, g_big):
        dated(files, today)

    repo = harness.Orthanc(work).start()
    # The PACS must know dirgw's port and dirgw the PACS's: the gateway's configuration is
    # written again once the PACS listens (same ports and state).
    gw = harness.Gateway(args.build_dir, work, repo.dicomweb, allowed_callers=("PACS1", "PACS"))
    pacs = Pacs(work, gw.port)
    ingest = (f"  pull:\n    - {{ name: old-pacs, ae_title: PACS, host: 127.0.0.1, port: {pacs.port},"
              f" every: 2s, look_back: 1d, retry: {{ initial: 1s, max: 4s }}, timeout: 20s }}\n")
    # 1 MiB: the 1024 x 1024 CT of the "gone" study (2 MiB) is refused, its study incomplete.
    gw.reconfigure(ingest_yaml="    max_object_size: 1MiB\n" + ingest)
    pacs.load(a + b + c + old)
    gw.start()

    first = {a_uid: 3, b_uid: 2, c_uid: 1}
    harness.wait_for("the three studies in Orthanc",
                     lambda: repo.count_instances() >= sum(first.values()), 60, 0.5)
    p0 = sources(gw, check)
    polls_before = p0.get("last_poll_at")
    harness.wait_for("two further polls", lambda: sources(gw, check).get("last_poll_at") !=
                     polls_before, 20, 0.5)
    time.sleep(2.5)
    count = repo.count_instances()
    check(count == 6, f"Orthanc holds {count} instances, expected exactly 6")
    for files in (a, b, c):
        for p in files:
            check(repo.instance_id(harness.sop_instance_uid(p)) is not None,
                  f"instance {harness.sop_instance_uid(p)} is not in Orthanc")
    check(repo.instance_id(harness.sop_instance_uid(old[0])) is None,
          "the study dated outside the look-back window was pulled")
    check(gw.status()["catalog"]["instances"] == 6,
          f"catalog holds {gw.status()['catalog']['instances']}, expected 6 (taken twice?)")
    moves = retrieving_lines(gw)
    check(len(moves) == 3, f"{len(moves)} C-MOVEs for three studies over several polls")
    rc, out, err = gw.run_cli("study", a_uid)
    check(rc == 0 and "source: pull:old-pacs" in out, f"dirgw study shows no pull source: {out}{err}")
    p1 = sources(gw, check)
    check(p1.get("name") == "old-pacs" and p1.get("studies_complete") == 3 and
          p1.get("objects_stored") == 6 and p1.get("last_error") == "" and
          p1.get("last_ok_at") and p1.get("next_poll_at"), f"dirgw sources: {p1}")
    rc, out, err = gw.run_cli("sources")
    check(rc == 0 and "old-pacs" in out and "pull" in out, f"dirgw sources (table): {out}{err}")
    log(f"first polls done in {time.time() - t_start:.0f}s: {count} instances, {len(moves)} moves")

    # --- a study added later arrives on the next poll; then nothing more is asked for
    pacs.load(d)
    harness.wait_for("the later study in Orthanc", lambda: repo.count_instances() >= 8, 30, 0.5)
    time.sleep(2.5)  # a further poll
    check(repo.count_instances() == 8, f"Orthanc holds {repo.count_instances()}, expected 8")
    check(len(retrieving_lines(gw)) == 4,
          f"{len(retrieving_lines(gw))} C-MOVEs after the later study, expected 4")

    # --- an instance added to a study already pulled: retrieved again, one new instance
    pacs.load(b2)
    harness.wait_for("the grown study's new instance in Orthanc",
                     lambda: repo.count_instances() >= 9, 30, 0.5)
    time.sleep(2.5)
    check(repo.count_instances() == 9, f"Orthanc holds {repo.count_instances()}, expected 9")
    grew = [l for l in gw.log_text().splitlines() if "pull: study grew" in l]
    check(len(grew) == 1 and b_uid in grew[0], f"the grown study was retrieved {len(grew)} times")
    check(gw.status()["catalog"]["instances"] == 9, "catalog count after the grown study")

    # --- kill -9 in the middle of a 40-instance C-MOVE; restart: all arrive, none twice
    pacs.load(k)
    held = harness.wait_for("the C-MOVE of the large study to be under way",
                            lambda: max(0, gw.status()["catalog"]["instances"] - 10), 30, 0.05)
    gw.kill9()
    log(f"killed -9 during the C-MOVE (at least {held + 1} of 40 held)")
    gw.start()
    harness.wait_for("the killed study in Orthanc", lambda: repo.count_instances() >= 49, 90, 0.5)
    time.sleep(2.5)
    st = gw.status()
    check(repo.count_instances() == 49, f"after kill -9: Orthanc holds {repo.count_instances()}, "
          "expected 49")
    check(st["catalog"]["instances"] == 49,
          f"after kill -9: catalog holds {st['catalog']['instances']}, expected 49 (taken twice?)")
    p2 = sources(gw, check)
    check(p2.get("studies_complete") == 5 and p2.get("studies_incomplete") == 0,
          f"dirgw sources after the restart: {p2}")

    # --- a study left incomplete, then deleted on the PACS: given up after three queries by UID
    pacs.load(g + g_big)
    harness.wait_for("the study with a refused instance to be incomplete",
                     lambda: sources(gw, check).get("studies_incomplete") == 1, 30, 0.5)
    pacs.wipe()
    t_wipe = time.time()
    try:
        p3 = harness.wait_for("the deleted study to be given up",
                              lambda: (lambda p: p if p.get("studies_gone") == 1 else None)(
                                  sources(gw, check)), 90, 0.5)
    except TimeoutError:
        log(f"dirgw sources: {sources(gw, check)}")
        log("\n".join(l for l in gw.log_text().splitlines()[-400:] if "pull:" in l)[-4000:])
        raise
    log(f"deleted study given up {time.time() - t_wipe:.1f}s after the PACS lost it")
    check(p3.get("studies_incomplete") == 0 and not p3.get("incomplete"),
          f"dirgw sources once the study is gone: {p3}")
    gone_lines = [l for l in gw.log_text().splitlines()
                  if "pull: study no longer on the PACS" in l]
    check(len(gone_lines) == 1 and g_uid in gone_lines[0], f"given up {len(gone_lines)} times")
    asked = [l for l in gw.log_text().splitlines()
             if "pull: study not found on the PACS, will ask again" in l and g_uid in l]
    check(len(asked) == 2, f"{len(asked)} queries answered no match before giving up, expected 2")
    moves_of_g = len([l for l in retrieving_lines(gw) if g_uid in l])
    time.sleep(6)  # polls and the retry backoff's maximum: nothing more is asked for
    later = len([l for l in retrieving_lines(gw) if g_uid in l])
    check(later == moves_of_g, f"the deleted study was asked for again: {moves_of_g} -> {later}")
    rc, out, err = gw.run_cli("sources")
    check(rc == 0 and "no longer on the PACS" in out, f"dirgw sources table: {out}{err}")
    check(gw.status()["catalog"]["instances"] == 51, "what arrived of the deleted study is kept")

    hits = harness.scan_for_phi({"dirgwd.log": gw.log_text()}, manifest)
    check(not hits, f"patient values in the log: {hits}")

    gw.stop()
    log(f"done in {time.time() - t_start:.0f}s")
    return check.finish("pull: all checks passed")


if __name__ == "__main__":
    sys.exit(main())
