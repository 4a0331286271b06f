#!/usr/bin/env python3
"""Power cuts: nothing acknowledged is lost when the power goes, not only when the process dies.

kill -9 leaves the kernel's page cache to be written; a power cut does not. dirgwd's whole
state directory (catalog with its WAL, spool, keys, audit anchor) lives here on a FUSE file
system that models the page cache (pagecache_fs.py, docs/durability.md): data becomes durable
when the file is fsync'd, names when their directory is fsync'd, and everything else is thrown
away at a cut. At each cut, at random moments while storescu sends synthetic studies and while
dirgwd forwards them to a real Orthanc: the file system freezes (what survives is fixed at that
instant), dirgwd is killed with SIGKILL, the file system is unmounted and mounted again with
only what survived, and dirgwd restarts on it. Half the cuts are "torn": each pending page and
each pending name change survives or not at random, as a kernel that had written back part of
its cache would leave it. About a third of the cuts come shortly after a kill -9 and a restart
(the page cache kept): dirgwd then starts on names that show but are not on the disk yet.

After every cut, each instance whose C-STORE got a success response before it must have
survived in the catalog with its spool object (in objects/, or as the spool slot it was received
into, which start-up links back), or as sent; the catalog must pass PRAGMA
integrity_check. At the end every acknowledged instance must be in Orthanc with the right
attributes, Orthanc and the catalog must hold each instance once. Prints: power cuts N,
acknowledged A, lost L.

Environment: DIRGW_POWERCUT_CUTS (default 100), DIRGW_POWERCUT_STUDIES (default 24),
DIRGW_POWERCUT_SEED (repeats a run), DIRGW_POWERCUT_TORN (fraction of torn cuts, default 0.5),
DIRGW_POWERCUT_KILLS (fraction of cuts that come after a kill -9 and a restart, default 0.3),
DIRGW_POWERCUT_TIMING=1 (logs how long each freeze, kill, remount and start took).
A longer run: DIRGW_POWERCUT_CUTS=1000 DIRGW_POWERCUT_STUDIES=200."""

import argparse
import atexit
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from chaos_proxy import ChaosProxy  # noqa: E402
from harness import log  # noqa: E402
from resending_pacs import (ResendingPacs, missing_or_different, stopped_gateway_failures,  # noqa: E402
                            wait_drained)

HERE = os.path.dirname(os.path.abspath(__file__))
INSTANCES_PER_STUDY = 16


class PageCacheMount:
    """pagecache_fs.py mounted on a directory; after each cut it mounts what survived."""

    def __init__(self, workdir, mountpoint):
        self.workdir = workdir
        self.mountpoint = mountpoint
        self.generation = 0
        self.image = os.path.join(workdir, "image-0")
        os.makedirs(self.image)
        os.makedirs(mountpoint, exist_ok=True)
        self.control = os.path.join(workdir, "control.sock")
        self.log_path = os.path.join(workdir, "pagecache_fs.log")
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "pagecache_fs.py"), self.image, mountpoint,
             self.control], stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        atexit.register(self.cleanup)
        self._wait_mounted()

    def _wait_mounted(self):
        def mounted():
            if self.process.poll() is not None:
                with open(self.log_path, "rb") as f:
                    raise RuntimeError("pagecache_fs exited:\n" + f.read().decode(errors="replace")[-3000:])
            if not os.path.ismount(self.mountpoint) or not os.path.exists(self.control):
                return False
            return json.loads(self.command("stats"))["generation"] == self.generation + 1
        harness.wait_for("the page-cache file system to be mounted", mounted, 30, 0.02)
        self.generation += 1

    def command(self, text, timeout=120):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.control)
            s.sendall(text.encode())
            reply = s.recv(65536).decode()
        if reply.startswith("error"):
            raise RuntimeError(f"pagecache_fs {text!r}: {reply}")
        return reply

    def freeze(self, torn_seed=None):
        """The power goes: from now on no operation reaches the file system; returns the
        directory holding what survived."""
        image = os.path.join(self.workdir, f"image-{self.generation}")
        self.command(f"freeze {image}" + (f" torn {torn_seed}" if torn_seed is not None else ""))
        return image

    def release(self):
        """Blocked operations fail from now on, so that a killed process can finish dying."""
        self.command("release")

    def remount(self, image):
        """Unmounts; the file system comes back with what the cut left."""
        self._unmount()
        shutil.rmtree(self.image, ignore_errors=True)
        self.image = image
        self._wait_mounted()

    def _unmount(self):
        t0 = time.time()
        p = subprocess.run(["umount", self.mountpoint], capture_output=True, text=True)
        if p.returncode != 0:
            log(f"umount: {p.stderr.strip()}; unmounting lazily")
            subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)
        if os.environ.get("DIRGW_POWERCUT_TIMING"):
            log(f"umount {time.time() - t0:.2f}s")

    def cleanup(self):
        if self.process.poll() is None:
            try:
                self.command("quit", timeout=5)
            except (OSError, RuntimeError):
                pass
            self._unmount()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def read_image(image):
    """What a restarted dirgwd would find: the catalog (checked on a copy, so that the image
    stays as the cut left it) and which instances have their object in the spool."""
    copy = image + ".check"
    os.makedirs(copy)
    for name in ("catalog.db", "catalog.db-wal"):
        if os.path.exists(os.path.join(image, name)):
            shutil.copy(os.path.join(image, name), copy)
    db_path = os.path.join(copy, "catalog.db")
    if not os.path.exists(db_path):
        shutil.rmtree(copy)
        return "no catalog", {}
    db = sqlite3.connect(db_path)
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    rows = db.execute("SELECT i.sop_instance_uid, i.object_sha256, "
                      "(SELECT group_concat(state) FROM deliveries d WHERE d.instance_id = i.id) "
                      "FROM instances i").fetchall()
    db.close()
    shutil.rmtree(copy)
    slots = slot_hashes(image)
    held = {}
    for uid, sha, states in rows:
        obj = os.path.join(image, "spool", "objects", sha[:2], sha)
        where = "objects" if os.path.exists(obj) else "slot" if sha in slots else None
        held[uid] = (where, states or "")
    return integrity, held


def slot_hashes(image):
    """The content hashes of the spool slots (spool/tmp/slot-*) a cut left: an acknowledged
    object whose hard link into objects/ was not durable yet survives as its slot, and dirgwd's
    start-up links it back (Spool::remove_temporaries) before anything reads objects/."""
    tmp = os.path.join(image, "spool", "tmp")
    out = set()
    for name in os.listdir(tmp) if os.path.isdir(tmp) else []:
        path = os.path.join(tmp, name)
        if name.startswith("slot-") and os.path.getsize(path) > 0:
            with open(path, "rb") as f:
                out.add(hashlib.sha256(f.read()).hexdigest())
    return out


def start_gateway(gw):
    """dirgwd started, ready when its log says so (cheaper than polling the CLI)."""
    before = gw.log_text().count("dirgwd started") if os.path.exists(gw.log_path) else 0
    env = dict(os.environ, TCP_NODELAY="0")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    gw.process = harness.Process("dirgwd", [gw.dirgwd, "--config", gw.config_path], gw.log_path,
                                 env=env)
    harness.wait_for("dirgwd to start", lambda: gw._alive_or_raise() and
                     gw.log_text().count("dirgwd started") > before, 60, 0.02)


def flushes(fs):
    stats = json.loads(fs.command("stats"))
    return stats["fsync"] + stats["fsyncdir"]


def wait_for_work(fs, rng):
    """A random point in dirgwd's work, whatever the machine's speed: after a random number of
    flushes since it started (each received object makes three, each forwarded batch one or
    two), or after one second at most (idle, everything delivered: a longer wait writes
    nothing more); then a little more, so that the cut also lands between flushes, in the
    middle of a write or of a STOW-RS request."""
    target = flushes(fs) + rng.randint(1, 30)
    deadline = time.time() + 1
    while time.time() < deadline and flushes(fs) < target:
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.3))


def cut(gw, fs, rng, torn_fraction):
    torn = rng.random() < torn_fraction
    t0 = time.time()
    image = fs.freeze(rng.randrange(1 << 30) if torn else None)
    t1 = time.time()
    gw.process.proc.kill()  # in the same frozen instant: nothing it does now reaches the disk
    fs.release()
    gw.process.proc.wait()
    t2 = time.time()
    gw.process.stop()
    gw.process = None
    fs.remount(image)
    if os.environ.get("DIRGW_POWERCUT_TIMING"):
        log(f"freeze {t1 - t0:.2f}s kill {t2 - t1:.2f}s remount {time.time() - t2:.2f}s")
    return torn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--cuts", type=int, default=int(os.environ.get("DIRGW_POWERCUT_CUTS", "100")))
    ap.add_argument("--studies", type=int,
                    default=int(os.environ.get("DIRGW_POWERCUT_STUDIES", "24")))
    ap.add_argument("--torn", type=float,
                    default=float(os.environ.get("DIRGW_POWERCUT_TORN", "0.5")))
    ap.add_argument("--kills", type=float,
                    default=float(os.environ.get("DIRGW_POWERCUT_KILLS", "0.3")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("DIRGW_POWERCUT_SEED", "0")) or
                    int(time.time()))
    args = ap.parse_args()
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("power cut test needs root and /dev/fuse")
        return 1
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])
    # Stopped from outside: still unmount and stop what was started (atexit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)
    log(f"seed {args.seed} (DIRGW_POWERCUT_SEED={args.seed} repeats the cut points)")

    work = harness.tempdir("dirgw-powercut-")
    files = []
    for k in range(args.studies):
        _, f = harness.synth(args.build_dir, os.path.join(work, f"study{k}"), "CT",
                             INSTANCES_PER_STUDY, seed=300 + k, patient_index=k,
                             extra=["--rows", "96", "--cols", "96"])
        files += f
    uid_of = {path: harness.sop_instance_uid(path) for path in files}
    log(f"{len(files)} instances in {args.studies} studies")

    repo = harness.Orthanc(work).start()
    proxy = ChaosProxy(repo.http_port)
    proxy.rate = 2**19  # so that cuts land in the middle of forwarding requests too
    gw = harness.Gateway(args.build_dir, work, f"http://127.0.0.1:{proxy.port}/dicom-web",
                         stable_age="1s", batch_max=8, request_timeout="5s",
                         retry="{ initial: 100ms, max: 1s }")
    fs = PageCacheMount(os.path.join(work, "pagecache"), gw.state_dir)
    # At exit, dirgwd dies before the file system goes (atexit runs the last registered first),
    # so that the unmount is not busy.
    atexit.register(lambda: gw.process and gw.process.proc.kill())
    start_gateway(gw)
    # Small associations with short time-outs: many of them end in a cut.
    pacs = ResendingPacs(gw.port, files, chunk=8, timeout=5, pause_ok=0.3, pause_failed=0.1)
    pacs.thread.start()

    failures = []
    cuts = torn_cuts = while_receiving = while_forwarding = in_slot = kills = runs_early = 0
    lost_at_cut = set()
    acked_in_slot = set()  # acknowledged, not sent, and found only as a slot after a cut
    seen_in = {}  # instance UID -> the cuts after which its catalog row and object survived
    started = time.time()
    while cuts < args.cuts:
        # Early cuts land while studies arrive; later ones mostly while they are forwarded.
        parts_before = proxy.parts
        if rng.random() < args.kills:
            # A kill -9 first, the page cache kept: dirgwd starts on names that show but may not
            # be on the disk yet (the links of the last objects before settle()), and the cut
            # comes while it runs again.
            wait_for_work(fs, rng)
            gw.process.proc.kill()
            gw.process.proc.wait()
            gw.process.stop()
            gw.process = None
            kills += 1
            start_gateway(gw)
        wait_for_work(fs, rng)
        while_receiving += pacs.busy
        while_forwarding += proxy.parts != parts_before
        # Acknowledged before the cut (storescu's output is read after its association ends,
        # so everything here got its response before the freeze).
        acked_before = set(pacs.acked)
        torn_cuts += cut(gw, fs, rng, args.torn)
        cuts += 1
        integrity, held = read_image(fs.image)
        if integrity != "ok":
            failures.append(f"cut {cuts}: catalog integrity_check: {integrity}")
        for uid, (where, _) in held.items():
            if where:
                seen_in.setdefault(uid, []).append(cuts)
            if where == "slot":
                in_slot += 1
        for path in sorted(acked_before):
            where, states = held.get(uid_of[path], (None, ""))
            if where == "slot" and "sent" not in states.split(","):
                acked_in_slot.add(uid_of[path])
            if not where and "sent" not in states.split(","):
                lost_at_cut.add(uid_of[path])
                failures.append(f"cut {cuts}: acknowledged instance {uid_of[path]} survived "
                                f"neither with its object nor as sent (catalog row: "
                                f"{'yes' if uid_of[path] in held else 'no'})")
        # Every other run with send_while_receiving: instances cleared and sent while their
        # study arrives, a second path to the repository that the cuts must find safe too
        # (docs/durability.md).
        early = cuts % 2 == 1
        gw.reconfigure(dest_yaml="    send_while_receiving: true\n" if early else "")
        runs_early += early
        t0 = time.time()
        start_gateway(gw)
        if os.environ.get("DIRGW_POWERCUT_TIMING"):
            log(f"start {time.time() - t0:.2f}s")
        if cuts % 20 == 0:
            log(f"{cuts} cuts ({torn_cuts} torn), {len(pacs.acked)} acknowledged so far, "
                f"{repo.count_instances()} in the repository")
    log(f"{cuts} power cuts in {time.time() - started:.0f} s; letting everything drain")
    proxy.rate = 0

    acked = pacs.finish(120)
    try:
        status = wait_drained(gw, 120)
    except TimeoutError as e:
        status = gw.status()
        failures.append(str(e))

    missing, different = missing_or_different(repo, acked, uid_of.get)
    lost = len(set(missing) | lost_at_cut)
    failures += [f"acknowledged instance {uid} is not in the repository (its object and catalog "
                 f"row survived cuts {seen_in.get(uid, [])[-5:]})" for uid in missing] + different
    in_repo = repo.count_instances()
    if in_repo != len(files):
        failures.append(f"the repository holds {in_repo} instances, expected {len(files)}")
    if status["catalog"]["instances"] != len(files):
        failures.append(f"catalog holds {status['catalog']['instances']} instances, expected {len(files)}")
    gw.stop()
    failures += stopped_gateway_failures(gw)
    db = sqlite3.connect(f"file:{os.path.join(gw.state_dir, 'catalog.db')}?mode=ro", uri=True)
    cleared_early = db.execute("SELECT count(*) FROM deliveries WHERE early = 1").fetchone()[0]
    db.close()
    if runs_early and not cleared_early:
        failures.append(f"{runs_early} runs with send_while_receiving cleared no instance early: "
                        "that path was not exercised")
    stats = fs.command("stats")
    fs.cleanup()
    repo.stop()
    proxy.close()

    print(f"power cut: {while_receiving} cuts while storescu was sending, {while_forwarding} "
          f"while dirgwd was forwarding, torn cuts {torn_cuts}, cuts after a kill -9 and a "
          f"restart {kills}, re-sends {proxy.parts - len(files)}, runs with "
          f"send_while_receiving {runs_early} (instances cleared while receiving "
          f"{cleared_early}), "
          f"objects found only as their slot after a cut {in_slot} (acknowledged and not sent: "
          f"{len(acked_in_slot)} instances, each must reach the repository), "
          f"file system at the end {stats}")
    print(f"power cuts {cuts}, acknowledged {len(acked)}, lost {lost}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures or lost else 0


if __name__ == "__main__":
    sys.exit(main())
