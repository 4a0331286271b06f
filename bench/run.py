#!/usr/bin/env python3
"""`make bench`: dirgwd against DCMTK's storescp, curl and Orthanc, on loopback, with synthetic
studies from tools/synth. Prints a table of medians (min-max) with the ratio to each baseline and
writes it as JSON to bench/results/. See docs/performance.md for the method and the latest table.

  python3 bench/run.py --build-dir build-release            # full: 5 times, memory 3 (~15 min)
  python3 bench/run.py --build-dir build-release --quick    # smaller studies, once each (~4 min)
  ... --cases ingest,ingest_ext4,forward,e2e,memory,scale,wan  --reps N  --workdir DIR  --keep

ingest_ext4 (bench/fs.py) runs the ingest cases again on a loop-mounted journalled ext4; wan
(bench/wan.py) forwards over emulated 100 Mbit/s / 50 ms and 1 Gbit/s / 10 ms links (2 times).

Everything runs inside a private network namespace with only loopback (as the integration
tests), under a temporary directory in /var/tmp (a disk, never tmpfs: the spool and the
baselines' output share it). Every process started is stopped, and the directory removed.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import fs  # noqa: E402
import wan  # noqa: E402
from benchlib import harness, log  # noqa: E402

# Requests in flight in the second send_while_receiving run of the end-to-end case.
SWR_LANES = 2
# A STOW-RS destination's concurrency when its configuration does not set it.
DEFAULT_STOW_LANES = harness.DEFAULT_STOW_LANES
BATCH = 50  # instances per STOW-RS request: dirgwd's batch.max_instances, and the curl bodies
RESULTS_DIR = os.path.join(B.HERE, "results")

FULL = {
    "reps": 5, "memory_reps": 3,
    "ct": 500, "cr": (2, 3200, 3200), "us_frames": 650, "big_ct": 5000,
    "small": 500, "catalog_sizes": (1000, 1_000_000, 5_000_000),
    "wan_ct": 200, "wan_reps": 2,
}
QUICK = {
    "reps": 1, "memory_reps": 1,
    "ct": 200, "cr": (2, 2000, 2000), "us_frames": 100, "big_ct": 1000,
    "small": 200, "catalog_sizes": (1000, 20_000),
    "wan_ct": 100, "wan_reps": 1,
}

TARGETS = {
    "ingest4": 0.90,      # dirgwd >= 90% of storescp's rate, four associations
    "ingest1": 0.65,      # >= 65% of storescp's rate, one association (issue 16)
    "fwd_orthanc": 1.00,  # >= curl -> Orthanc (issue 16)
    "fwd_sink": 0.90,     # >= 90% of curl -> null sink (issue 16)
    "e2e": 1.5,           # >= 1.5x as fast as Orthanc as a router
    "e2e_swr": 2.5,       # with send_while_receiving: >= 2.5x (issue 16)
    "rss_mb": 64,         # peak RSS < 64 MB
    "scale": 1.20,        # time per instance at 1M and 5M within 20% of 1k
    "scale_start_s": 2.0,     # dirgwd start-up (reconciliation included) under 2 s
    "scale_status_ms": 100,   # dirgw status (the CLI process included) under 100 ms
}


# --- results ------------------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.rows = []
        self.notes = []

    def add(self, group, name, unit, values, mb_values=None, baseline=None, ratio_kind=None,
            target=None, better="higher", info=None):
        row = {"group": group, "name": name, "unit": unit, "values": values,
               "median": statistics.median(values) if values else None,
               "min": min(values) if values else None, "max": max(values) if values else None,
               "better": better, "ratio_kind": ratio_kind}
        if mb_values:
            row["mb_per_s_values"] = mb_values
            row["mb_per_s_median"] = statistics.median(mb_values)
        if baseline is not None:
            base = self.find(group, baseline)
            row["baseline"] = baseline
            if base and base["median"] and row["median"]:
                if ratio_kind == "slowdown" or better == "higher":
                    row["ratio"] = row["median"] / base["median"]  # this / baseline
                else:  # a time: how many times faster than the baseline
                    row["ratio"] = base["median"] / row["median"]
        if target is not None:
            row["target"] = target
            if baseline is not None:
                if "ratio" in row:
                    row["met"] = (row["ratio"] <= target if ratio_kind == "slowdown"
                                  else row["ratio"] >= target)
            elif row["median"] is not None:
                row["met"] = row["median"] < target if better == "lower" else row["median"] >= target
        if info:
            row["info"] = info
        self.rows.append(row)
        return row

    def find(self, group, name):
        for r in self.rows:
            if r["group"] == group and r["name"] == name:
                return r
        return None

    def note(self, text):
        log("note: " + text)
        self.notes.append(text)

    def table(self):
        def fmt(v):
            if v is None:
                return "-"
            if abs(v) >= 100:
                return f"{v:.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            return f"{v:.2f}"

        lines = []
        head = (f"{'case / subject':<44} {'median':>8} {'min-max':>15} {'unit':<9} {'MB/s':>7} "
                f"{'vs':<27} {'ratio':>6} {'target':>8} {'met':<4}")
        lines.append(head)
        lines.append("-" * len(head))
        group = None
        for r in self.rows:
            if r["group"] != group:
                group = r["group"]
                lines.append(group)
            rng = f"{fmt(r['min'])}-{fmt(r['max'])}" if r["values"] else "-"
            mb = fmt(r.get("mb_per_s_median")) if r.get("mb_per_s_median") else ""
            target = ""
            if "target" in r:
                t = r["target"]
                if r.get("baseline") is None:
                    target = f"< {t:g}" if r["better"] == "lower" else f">= {t:g}"
                else:
                    target = f"<= {t:.2f}" if r["ratio_kind"] == "slowdown" else f">= {t:.2f}"
            met = {True: "yes", False: "NO"}.get(r.get("met"), "")
            lines.append(f"  {r['name']:<42} {fmt(r['median']):>8} {rng:>15} {r['unit']:<9} "
                         f"{mb:>7} {r.get('baseline') or '':<27} "
                         f"{fmt(r.get('ratio')) if 'ratio' in r else '':>6} {target:>8} {met:<4}")
        return "\n".join(lines)


# --- the cases ----------------------------------------------------------------------------------

class Bench:
    def __init__(self, args, params, work):
        self.args = args
        self.p = params
        self.work = work
        self.build = os.path.abspath(args.build_dir)
        self.res = Results()
        self.data = {}
        self.quiet_budget = 0 if args.no_wait else 300.0  # seconds of waiting for quiet, in all
        self.busy_sections = 0
        self.waited = 0.0
        self.trash = []
        self.fs_label = ""  # the ingest groups' file system, when not the bench's own disk
        self.min_free_gb = 30  # below this, a repetition's directories go at once

    def tmp(self, name):
        d = tempfile.mkdtemp(prefix=name + "-", dir=self.work)
        return d

    def clean(self, d, now=False):
        """Removes a repetition's directory at the end of the case, not between repetitions:
        deleting hundreds of MB frees inodes and blocks that the next subject would pay for (the
        disk is mounted with `discard`, and a journal-less ext4 scans past recently freed inodes
        when it creates a file). Big directories go at once when space is short."""
        if self.args.keep:
            return
        if now or self.free_gb() < self.min_free_gb:
            shutil.rmtree(d, ignore_errors=True)
        else:
            self.trash.append(d)

    def empty_trash(self):
        for d in self.trash:
            shutil.rmtree(d, ignore_errors=True)
        self.trash = []

    def free_gb(self):
        st = os.statvfs(self.work)
        return st.f_bavail * st.f_frsize / 2**30

    def settle(self):
        """Before a timed section: writes back every dirty page, so that one measurement does not
        pay for the previous one's writes (storescp and Orthanc do not fsync; the kernel would
        flush their data while the next subject runs); then waits, within a budget, until the
        machine is quiet (on a shared machine, other people's builds and tests come and go)."""
        os.sync()
        if self.quiet_budget <= 0:
            return
        t0 = time.monotonic()
        while True:
            busy = machine_busy()
            waited = time.monotonic() - t0
            if busy < 0.25:
                break
            if waited > 30 or waited >= self.quiet_budget:
                self.busy_sections += 1
                break
            time.sleep(1)
        self.quiet_budget -= time.monotonic() - t0
        self.waited += time.monotonic() - t0

    # data sets
    def make_data(self):
        p = self.p
        d = os.path.join(self.work, "data")
        t0 = time.monotonic()

        def synth(key, modality, instances, seed, extra=()):
            out = os.path.join(d, key)
            _, files = harness.synth(self.build, out, modality, instances, seed=seed,
                                     patient_index=seed, extra=list(extra))
            size = sum(os.path.getsize(f) for f in files)
            self.data[key] = {"files": files, "bytes": size}
            log(f"data {key}: {len(files)} files, {size / 1e6:.1f} MB")

        synth("ct", "CT", p["ct"], 1)
        n, rows, cols = p["cr"]
        synth("cr", "CR", n, 2, ["--rows", str(rows), "--cols", str(cols)])
        if "memory" in self.args.cases:
            synth("us", "US", 1, 3, ["--frames", str(p["us_frames"]), "--rows", "640", "--cols", "480"])
            synth("bigct", "CT", p["big_ct"], 4)
        if "scale" in self.args.cases:
            for i in range(p["reps"]):  # new instances for each repetition
                synth(f"small-{i}", "CT", p["small"], 5 + i, ["--rows", "16", "--cols", "16"])
        log(f"synthetic data ready in {time.monotonic() - t0:.1f}s")

    def mb(self, key):
        return self.data[key]["bytes"] / 1e6

    def label(self, key):
        f = self.data[key]["files"]
        return f"{len(f)} x {self.data[key]['bytes'] / len(f) / 1e6:.2f} MB"

    # 1. ingest
    def ingest_dirgw(self, key, parallel):
        files = self.data[key]["files"]
        w = self.tmp("ingest-dirgw")
        gw = B.BenchGateway(self.build, w, "http://127.0.0.1:9/dicom-web", stable_age="1h").start()
        try:
            self.settle()
            secs = B.storescu_parallel(gw.port, B.split(files, parallel), gw.ae_title)
            st = gw.status()
            stored = st["ingest"]["dicom"]["stored"]
            if stored != len(files):
                raise RuntimeError(f"dirgwd stored {stored} of {len(files)}")
        finally:
            gw.stop()
            self.clean(w)
        return secs

    def ingest_storescp(self, key, parallel):
        files = self.data[key]["files"]
        w = self.tmp("ingest-storescp")
        scp = B.Storescp(w).start()
        try:
            self.settle()
            secs = B.storescu_parallel(scp.port, B.split(files, parallel), "STORESCP")
            if scp.count() != len(files):
                raise RuntimeError(f"storescp wrote {scp.count()} of {len(files)} files")
        finally:
            scp.stop()
            self.clean(w)
        return secs

    def ingest_floor(self, key, parallel):
        """The disk's floor: the same objects, from memory, each written to a new file and
        fdatasynced by `parallel` writers (benchlib.durable_writer)."""
        w = self.tmp("ingest-floor")
        blobs = []
        for f in self.data[key]["files"]:
            with open(f, "rb") as fh:
                blobs.append(fh.read())
        try:
            self.settle()
            secs = B.durable_writer(w, B.split(blobs, parallel))
        finally:
            self.clean(w)
        return secs

    def case_ingest(self):
        reps = self.p["reps"]
        for key, parallel in (("ct", 1), ("ct", 4), ("cr", 1)):
            n = len(self.data[key]["files"])
            group = (f"1. ingest {key.upper()} {self.label(key)}, {parallel} "
                     f"association{'s' if parallel > 1 else ''}{self.fs_label}")
            base, ours, floor = [], [], []
            for i in range(reps):
                base.append(self.ingest_storescp(key, parallel))
                ours.append(self.ingest_dirgw(key, parallel))
                if key == "ct":
                    floor.append(self.ingest_floor(key, parallel))
                log(f"{group} rep {i + 1}: storescp {base[-1]:.2f}s, dirgwd {ours[-1]:.2f}s"
                    + (f", disk floor {floor[-1]:.2f}s" if floor else ""))
            self.res.add(group, "storescp (baseline)", "inst/s", [n / s for s in base],
                         [self.mb(key) / s for s in base])
            if floor:
                w = "writer" if parallel == 1 else "writers"
                self.res.add(group, f"disk floor ({parallel} {w}, write+fdatasync)", "inst/s",
                             [n / s for s in floor], [self.mb(key) / s for s in floor])
            target = (None if key != "ct" else TARGETS["ingest4"] if parallel == 4
                      else TARGETS["ingest1"] if parallel == 1 else None)
            self.res.add(group, "dirgwd (fsync+catalog)", "inst/s", [n / s for s in ours],
                         [self.mb(key) / s for s in ours], baseline="storescp (baseline)",
                         target=target)
            if floor:
                self.res.add(group, "dirgwd, vs the disk floor", "inst/s", [n / s for s in ours],
                             [self.mb(key) / s for s in ours],
                             baseline=f"disk floor ({parallel} {w}, write+fdatasync)")

    # 1b. ingest on a journalled ext4 (bench/fs.py)
    def case_ingest_ext4(self):
        fs.case_ingest_ext4(self)

    # 2. forward
    def dirgw_forward(self, key, url, verify, concurrency=1):
        """Ingests with stable_age 3s, then times from the log line "studies stable" (the study
        becomes READY) to the "batch forwarded" line that brings the sent count to N. dirgwd
        fsyncs what it receives, so nothing is left to write back when forwarding starts."""
        files = self.data[key]["files"]
        n = len(files)
        w = self.tmp("fwd-dirgw")
        gw = B.BenchGateway(self.build, w, url, stable_age="3s", batch=BATCH,
                            concurrency=concurrency).start()
        watch = B.LogWatch(gw.log_path)
        try:
            watch.skip_existing()
            self.settle()
            B.storescu_parallel(gw.port, [files], gw.ae_title)
            t0, _ = watch.wait("the study to become stable", lambda l: 'msg="studies stable"' in l,
                               60, gw.alive_or_raise)
            sent = 0
            requests = 0
            http_ms = 0
            t1 = None
            answers = []  # (time the line was seen, ms of its request)
            deadline = time.monotonic() + 1800
            while sent < n:
                if time.monotonic() > deadline:
                    raise TimeoutError("forwarding took more than 30 minutes")
                for t, line in watch.poll():
                    if 'msg="batch forwarded"' in line:
                        requests += 1
                        sent += int(B.field(line, "sent") or 0)
                        http_ms += int(B.field(line, "ms") or 0)
                        answers.append((t, int(B.field(line, "ms") or 0)))
                        if int(B.field(line, "retry") or 0) or int(B.field(line, "refused") or 0):
                            raise RuntimeError("a batch was not accepted: " + line)
                        t1 = t
                gw.alive_or_raise()
                time.sleep(watch.interval)
            st = gw.status()
            if st["destinations"][0]["pending_instances"] != 0:
                raise RuntimeError("dirgw status still shows pending instances")
            verify(n)
            # With one request at a time: from one answer to the next request's start, i.e. the
            # gateway's own work between requests (the log is polled every 5 ms: a median).
            gaps = [(b[0] - a[0]) * 1000 - b[1] for a, b in zip(answers, answers[1:])]
            self.last_forward = {"requests": requests, "http_s": http_ms / 1000,
                                 "between_ms": statistics.median(gaps) if gaps else None}
            return t1 - t0, requests
        finally:
            gw.stop()
            self.clean(w)

    def case_forward(self):
        reps = self.p["reps"]
        key = "ct"
        files = self.data[key]["files"]
        n = len(files)
        bodies, ctype = B.build_multipart_bodies(files, BATCH, os.path.join(self.work, "bodies"))
        group = f"2. forward CT {self.label(key)} to Orthanc (STOW-RS, {BATCH}/request)"
        curl_t, ours_t, ours2_t, router_t, http_orthanc = [], [], [], [], []
        for i in range(reps):
            # curl -> fresh Orthanc
            w = self.tmp("fwd-curl")
            o = B.orthanc(w, "repo").start()
            try:
                self.settle()
                secs, _ = B.curl_stow(o.dicomweb + "/studies", bodies, ctype)
                if o.count_instances() != n:
                    raise RuntimeError(f"Orthanc holds {o.count_instances()} after curl")
                curl_t.append(secs)
            finally:
                o.stop()
                self.clean(w)
            # dirgwd -> fresh Orthanc: one request at a time, then a STOW-RS destination's
            # default (two in flight)
            for lanes, times in ((1, ours_t), (DEFAULT_STOW_LANES, ours2_t)):
                w = self.tmp(f"fwd-orthanc{lanes}")
                o = B.orthanc(w, "repo").start()
                try:
                    def verify(count, o=o):
                        if o.count_instances() != count:
                            raise RuntimeError(f"Orthanc holds {o.count_instances()}, "
                                               f"expected {count}")
                    secs, n_requests = self.dirgw_forward(key, o.dicomweb, verify, concurrency=lanes)
                    times.append(secs)
                    if lanes == 1:
                        reqs = n_requests
                        http_orthanc.append(self.last_forward["http_s"])
                finally:
                    o.stop()
                    self.clean(w)
            # Orthanc as the router: A holds the study (C-STORE), its DICOMweb client sends it to B
            w = self.tmp("fwd-router")
            dest = B.orthanc(w, "repo").start()
            router = B.orthanc(w, "router", dicom=True,
                               servers={"dest": [dest.dicomweb + "/"]}).start()
            try:
                B.storescu_parallel(router.dicom_port, [files], "ROUTER")
                harness.wait_for("the router to hold the study",
                                 lambda: router.count_instances() == n, 120, 0.1)
                study = router.get("/studies")[0]
                self.settle()
                t0 = time.monotonic()
                try:
                    answer = post_json(router.url + "/dicom-web/servers/dest/stow",
                                       {"Resources": [study], "Synchronous": True})
                    router_t.append(time.monotonic() - t0)
                    if dest.count_instances() != n:
                        raise RuntimeError(f"delivered {dest.count_instances()}: {answer}")
                except Exception as e:  # the baseline failed: say so, keep the other numbers
                    tail = " | ".join(router.process.log_text().splitlines()[-5:]) if router.process else ""
                    self.res.note(f"forward rep {i + 1}: Orthanc as a router failed after "
                                  f"{time.monotonic() - t0:.1f}s ({e}); its log ends: {tail[-600:]}")
            finally:
                router.stop()
                dest.stop()
                self.clean(w)
            log(f"forward rep {i + 1}: curl {curl_t[-1]:.2f}s, dirgwd {ours_t[-1]:.2f}s "
                f"({reqs} requests), with {DEFAULT_STOW_LANES} in flight {ours2_t[-1]:.2f}s, "
                f"Orthanc router "
                f"{f'{router_t[-1]:.2f}s' if len(router_t) == i + 1 else 'failed'}")
        mb = self.mb(key)
        self.res.add(group, "curl -> Orthanc (baseline)", "inst/s", [n / s for s in curl_t],
                     [mb / s for s in curl_t])
        self.res.add(group, "Orthanc router -> Orthanc", "inst/s", [n / s for s in router_t],
                     [mb / s for s in router_t])
        self.res.add(group, "dirgwd -> Orthanc, concurrency 1", "inst/s", [n / s for s in ours_t],
                     [mb / s for s in ours_t], baseline="curl -> Orthanc (baseline)",
                     target=TARGETS["fwd_orthanc"])
        self.res.add(group, "dirgwd -> Orthanc, concurrency 1, vs router", "inst/s",
                     [n / s for s in ours_t],
                     [mb / s for s in ours_t], baseline="Orthanc router -> Orthanc")
        # The default for a STOW-RS destination (config: kDefaultStowRsConcurrency).
        lanes = f"dirgwd -> Orthanc, concurrency {DEFAULT_STOW_LANES} (default)"
        self.res.add(group, lanes, "inst/s", [n / s for s in ours2_t], [mb / s for s in ours2_t],
                     baseline="curl -> Orthanc (baseline)", target=TARGETS["fwd_orthanc"])
        self.res.add(group, lanes + ", vs router", "inst/s", [n / s for s in ours2_t],
                     [mb / s for s in ours2_t], baseline="Orthanc router -> Orthanc")
        self.res.add(group, "(info) dirgwd, concurrency 1: forward time", "s", ours_t, better="lower")
        self.res.add(group, "(info) dirgwd, concurrency 1: of which in HTTP", "s", http_orthanc,
                     better="lower")

        # null sink
        group = f"2. forward CT {self.label(key)} to a null sink (nginx, {BATCH}/request)"
        if not B.NullSink.available():
            self.res.note("nginx not installed: the null-sink cases were skipped "
                          "(apt-get install nginx-light)")
            return
        w = self.tmp("sink")
        sink = B.NullSink(w, B.stow_answer(files)).start()
        body_bytes = [os.path.getsize(b) for b in bodies]
        curl_t, ours_t, http_sink, between = [], [], [], []
        try:
            for i in range(reps):
                sink.reset_log()
                self.settle()
                secs, res = B.curl_stow(sink.url + "/studies", bodies, ctype)
                short = [r for r, size in zip(sink.requests(), body_bytes) if r[3] < size]
                if len(sink.requests()) != len(bodies) or short:
                    raise RuntimeError(f"the sink did not read every body: {sink.requests()[:3]}")
                curl_t.append(secs)
                sink.reset_log()

                def verify(count):
                    got = sum(r[3] for r in sink.requests())
                    if got < self.data[key]["bytes"]:
                        raise RuntimeError(f"the sink read {got} bytes, less than the study")
                secs, reqs = self.dirgw_forward(key, sink.url, verify)
                ours_t.append(secs)
                http_sink.append(self.last_forward["http_s"])
                if self.last_forward["between_ms"] is not None:
                    between.append(self.last_forward["between_ms"])
                log(f"sink rep {i + 1}: curl {curl_t[-1]:.2f}s, dirgwd {ours_t[-1]:.2f}s ({reqs} requests)")
        finally:
            sink.stop()
            self.clean(w)
        self.res.add(group, "curl -> sink (baseline)", "inst/s", [n / s for s in curl_t],
                     [mb / s for s in curl_t])
        self.res.add(group, "dirgwd -> sink", "inst/s", [n / s for s in ours_t],
                     [mb / s for s in ours_t], baseline="curl -> sink (baseline)",
                     target=TARGETS["fwd_sink"])
        self.res.add(group, "(info) curl: sum of request times", "s", curl_t, better="lower")
        self.res.add(group, "(info) dirgwd: forward time", "s", ours_t, better="lower")
        self.res.add(group, "(info) dirgwd: of which in HTTP", "s", http_sink, better="lower")
        self.res.add(group, "(info) dirgwd: between requests, per batch", "ms", between,
                     better="lower")
        shutil.rmtree(os.path.join(self.work, "bodies"), ignore_errors=True)

    # 3. end to end
    def case_e2e(self):
        reps = self.p["reps"]
        key = "ct"
        files = self.data[key]["files"]
        n = len(files)
        group = f"3. end to end CT {self.label(key)}: first C-STORE to last instance in Orthanc"
        ours, router_t, swr, swr2 = [], [], [], []
        phases = {"ingest": [], "stable": [], "forward": [], "r_ingest": [], "r_rest": []}

        def until_all(dest, t0, alive, watch=None):
            deadline = t0 + 1800
            while time.monotonic() < deadline:
                if watch:
                    watch.poll()  # a line's time is when a poll saw it: poll while waiting
                if dest.count_instances() >= n:
                    return time.monotonic() - t0
                alive()
                time.sleep(0.05)
            raise TimeoutError("end to end took more than 30 minutes")

        for i in range(reps):
            w = self.tmp("e2e-dirgw")
            dest = B.orthanc(w, "repo").start()
            gw = B.BenchGateway(self.build, w, dest.dicomweb, stable_age="1s", batch=BATCH).start()
            watch = B.LogWatch(gw.log_path)
            try:
                watch.skip_existing()
                self.settle()
                t0 = time.monotonic()
                ingest = B.storescu_parallel(gw.port, [files], gw.ae_title)
                ours.append(until_all(dest, t0, gw.alive_or_raise, watch))
                stable = [t for t, line in watch.lines if 'msg="studies stable"' in line]
                if stable:
                    phases["ingest"].append(ingest)
                    phases["stable"].append(stable[0] - t0 - ingest)
                    phases["forward"].append(ours[-1] - (stable[0] - t0))
            finally:
                gw.stop()
                dest.stop()
                self.clean(w)
            # The same with send_while_receiving: instances go while the study still arrives;
            # with one request in flight, then SWR_LANES (issue 16: 2-4 per destination).
            for concurrency, times in ((1, swr), (SWR_LANES, swr2)):
                w = self.tmp(f"e2e-swr{concurrency}")
                dest = B.orthanc(w, "repo").start()
                gw = B.BenchGateway(self.build, w, dest.dicomweb, stable_age="1s", batch=BATCH,
                                    concurrency=concurrency,
                                    dest_extra="    send_while_receiving: true\n").start()
                try:
                    self.settle()
                    t0 = time.monotonic()
                    B.storescu_parallel(gw.port, [files], gw.ae_title)
                    times.append(until_all(dest, t0, gw.alive_or_raise))
                finally:
                    gw.stop()
                    dest.stop()
                    self.clean(w)
            w = self.tmp("e2e-router")
            dest = B.orthanc(w, "repo").start()
            router = B.orthanc(w, "router", dicom=True, lua=B.ROUTER_LUA, stable_age=1,
                               servers={"dest": [dest.dicomweb + "/"]}).start()
            try:
                self.settle()
                t0 = time.monotonic()
                ingest = B.storescu_parallel(router.dicom_port, [files], "ROUTER")
                router_t.append(until_all(dest, t0, lambda: router._alive_or_raise()))
                phases["r_ingest"].append(ingest)
                phases["r_rest"].append(router_t[-1] - ingest)
            finally:
                router.stop()
                dest.stop()
                self.clean(w)
            log(f"e2e rep {i + 1}: dirgwd {ours[-1]:.2f}s, send_while_receiving {swr[-1]:.2f}s "
                f"(concurrency {SWR_LANES}: {swr2[-1]:.2f}s), Orthanc router {router_t[-1]:.2f}s")
        self.res.add(group, "Orthanc router (StableAge 1) (baseline)", "s", router_t, better="lower")
        self.res.add(group, "dirgwd (stable_age 1s, concurrency 1)", "s", ours, better="lower",
                     baseline="Orthanc router (StableAge 1) (baseline)", target=TARGETS["e2e"])
        self.res.add(group, "dirgwd send_while_receiving, concurrency 1", "s", swr,
                     better="lower", baseline="Orthanc router (StableAge 1) (baseline)",
                     target=TARGETS["e2e_swr"])
        default = " (default)" if SWR_LANES == DEFAULT_STOW_LANES else ""
        self.res.add(group, f"dirgwd send_while_receiving, concurrency {SWR_LANES}{default}", "s",
                     swr2,
                     better="lower", baseline="Orthanc router (StableAge 1) (baseline)",
                     target=TARGETS["e2e_swr"])
        for key, name in (("ingest", "(info) dirgwd: C-STOREs (storescu)"),
                          ("stable", "(info) dirgwd: until stable (log)"),
                          ("forward", "(info) dirgwd: stable to last in Orthanc"),
                          ("r_ingest", "(info) router: C-STOREs (storescu)"),
                          ("r_rest", "(info) router: then to last in dest")):
            if phases[key]:
                self.res.add(group, name, "s", phases[key], better="lower")

    # 6. WAN (bench/wan.py)
    def case_wan(self):
        wan.case_wan(self, BATCH, post_json)

    # 4. memory
    def case_memory(self):
        reps = self.p["memory_reps"]
        for key in ("us", "bigct"):
            files = self.data[key]["files"]
            n = len(files)
            group = f"4. memory: dirgwd peak RSS (VmHWM), ingest + forward {key.upper()} {self.label(key)}"
            hwm, ingest_t, fwd_t = [], [], []
            for i in range(reps):
                w = self.tmp("mem")
                dest = B.orthanc(w, "repo").start()
                # A STOW-RS destination's default: two requests in flight, two bodies streaming.
                gw = B.BenchGateway(self.build, w, dest.dicomweb, stable_age="1s", batch=BATCH,
                                    concurrency=DEFAULT_STOW_LANES).start()
                watch = B.LogWatch(gw.log_path)
                try:
                    watch.skip_existing()
                    self.settle()
                    ingest_t.append(B.storescu_parallel(gw.port, [files], gw.ae_title))
                    t0 = time.monotonic()
                    sent = 0
                    while sent < n:
                        for _, line in watch.poll():
                            if 'msg="batch forwarded"' in line:
                                sent += int(B.field(line, "sent") or 0)
                        gw.alive_or_raise()
                        if time.monotonic() - t0 > 1800:
                            raise TimeoutError("forwarding took more than 30 minutes")
                        time.sleep(0.02)
                    fwd_t.append(time.monotonic() - t0)
                    hwm.append(B.vm_hwm_kib(gw.pid) / 1024)
                    if dest.count_instances() != n:
                        raise RuntimeError(f"Orthanc holds {dest.count_instances()} of {n}")
                finally:
                    gw.stop()
                    dest.stop()
                    self.clean(w, now=True)  # gigabytes per repetition
                log(f"{group} rep {i + 1}: VmHWM {hwm[-1]:.1f} MB, ingest {ingest_t[-1]:.1f}s, "
                    f"stable+forward {fwd_t[-1]:.1f}s")
            self.res.add(group, "dirgwd peak RSS", "MB", hwm, better="lower", target=TARGETS["rss_mb"])
            self.res.add(group, "(info) ingest, 1 association", "inst/s", [n / s for s in ingest_t],
                         [self.mb(key) / s for s in ingest_t])
            self.res.add(group, "(info) stable_age 1s + forward", "s", fwd_t, better="lower")

    # 5. catalog scale
    def case_scale(self):
        """Per-instance ingest, start-up and `dirgw status` with 1k / 1M / 5M instances in the
        catalog. One pre-filled state directory per size, reused by every repetition (each adds
        its own 500 new instances: negligible beside the pre-fill), sizes alternating."""
        reps = self.p["reps"]
        sizes = self.p["catalog_sizes"]
        n = self.p["small"]
        group = f"5. catalog scale: ingest {n} tiny CT (16x16), 1 association, into a catalog of"
        w0 = self.tmp("scale")
        states = {}
        for size in sizes:
            gw = B.BenchGateway(self.build, w0, "http://127.0.0.1:9/dicom-web", name=f"gw-{size}")
            gw.start()
            gw.stop()
            t0 = time.monotonic()
            made = B.prefill_catalog(gw.state_dir, size)
            secs = time.monotonic() - t0
            mb = os.path.getsize(os.path.join(gw.state_dir, "catalog.db")) / 1e6
            log(f"catalog pre-filled with {size:,} instances ({made['studies']:,} studies, "
                f"{made['spool_files']:,} spool files, {mb:,.0f} MB) in {secs:.1f}s")
            self.res.add(group, f"(info) pre-fill {size:,} (catalog {mb:,.0f} MB)", "s", [secs],
                         better="lower")
            states[size] = gw
        per = {s: [] for s in sizes}
        start = {s: [] for s in sizes}
        cli = {s: [] for s in sizes}
        server = {s: [] for s in sizes}
        hwm = {s: [] for s in sizes}
        crash = {s: [] for s in sizes}
        for i in range(reps):
            files = self.data[f"small-{i}"]["files"]
            for size in sizes:
                gw = states[size]
                try:
                    self.settle()
                    start[size].append(gw.start_timed())
                    have = gw.status()["catalog"]["instances"]
                    if have != size + i * n:
                        raise RuntimeError(f"catalog holds {have} instances after start, "
                                           f"expected {size + i * n}")
                    for _ in range(3):
                        t0 = time.monotonic()
                        gw.status()
                        cli[size].append(time.monotonic() - t0)
                        server[size].append(gw.timed_request({"cmd": "status"}))
                    self.settle()
                    secs = B.storescu_parallel(gw.port, [files], gw.ae_title)
                    if gw.status()["ingest"]["dicom"]["stored"] != n:
                        raise RuntimeError("not every tiny instance was stored")
                    per[size].append(secs / n * 1000)
                    hwm[size].append(B.vm_hwm_kib(gw.pid) / 1024)
                finally:
                    gw.stop()
                log(f"scale rep {i + 1}: {size:,} in catalog: start {start[size][-1]:.2f}s, "
                    f"status {min(cli[size][-3:]) * 1000:.0f} ms (server "
                    f"{min(server[size][-3:]) * 1000:.0f} ms), {per[size][-1]:.2f} ms/instance, "
                    f"VmHWM {hwm[size][-1]:.1f} MB")
        # After kill -9 the next start walks the whole spool (docs/durability.md, reconciliation):
        # once per size, after the repetitions (it changes nothing in the state directory).
        for size in sizes:
            gw = states[size]
            try:
                gw.start_timed()
                gw.process.stop(signal.SIGKILL)
                gw.process = None
                self.settle()
                crash[size].append(gw.start_timed())
            finally:
                gw.stop()
            log(f"scale: {size:,} in catalog: start after kill -9 {crash[size][-1]:.2f}s")
        self.clean(w0, now=True)
        lo = sizes[0]
        self.res.add(group, f"{lo:,} instances (baseline)", "ms/inst", per[lo], better="lower")
        for size in sizes[1:]:
            self.res.add(group, f"{size:,} instances", "ms/inst", per[size], better="lower",
                         baseline=f"{lo:,} instances (baseline)", ratio_kind="slowdown",
                         target=TARGETS["scale"])
        for size in sizes:
            self.res.add(group, f"dirgwd start, {size:,} in catalog", "s", start[size],
                         better="lower", target=TARGETS["scale_start_s"])
        for size in sizes:
            self.res.add(group, f"dirgwd start after kill -9, {size:,} in catalog", "s",
                         crash[size], better="lower", target=TARGETS["scale_start_s"])
        for size in sizes:
            self.res.add(group, f"dirgw status, {size:,} in catalog", "ms",
                         [t * 1000 for t in cli[size]], better="lower",
                         target=TARGETS["scale_status_ms"])
            self.res.add(group, f"(info) of which the daemon, {size:,}", "ms",
                         [t * 1000 for t in server[size]], better="lower")
        for size in sizes:
            self.res.add(group, f"peak RSS, {size:,} in catalog", "MB", hwm[size],
                         better="lower", target=TARGETS["rss_mb"])


def machine_busy(interval=0.3):
    """Fraction of all CPUs' time not idle (I/O wait counts as busy) over `interval` seconds."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3], sum(v[:8])
    idle0, total0 = sample()
    time.sleep(interval)
    idle1, total1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def post_json(url, body, timeout=1800):
    import urllib.request
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def machine():
    def cmd(args):
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:
            return ""

    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])

    def pkg(name):
        return cmd(["dpkg-query", "-W", "-f=${Version}", name]) or "not installed"

    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "disk": cmd(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", "/var/tmp"]),
        "dcmtk": pkg("dcmtk"), "orthanc": pkg("orthanc"), "orthanc-dicomweb": pkg("orthanc-dicomweb"),
        "nginx": pkg("nginx-light") if pkg("nginx-light") != "not installed" else pkg("nginx"),
        "curl": pkg("curl"), "sqlite": pkg("libsqlite3-0"),
        "commit": cmd(["git", "-C", B.SOURCE_DIR, "rev-parse", "--short", "HEAD"]),
        "tree_dirty": bool(cmd(["git", "-C", B.SOURCE_DIR, "status", "--porcelain", "--", "gateway"])),
    }


def progress(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def quiet_logs(path, verbose):
    """Sends every module's detail lines (harness, benchlib, the cases) to a file, and to the
    terminal only with --verbose: the terminal gets one line per case, then the table."""
    f = open(path, "w")

    def detail(msg):
        f.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
        f.flush()
        if verbose:
            progress(msg)

    for module in (harness, B, wan, fs, sys.modules[__name__]):
        module.log = detail
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--quick", action="store_true", help="smaller studies, once each (~2 min)")
    ap.add_argument("--reps", type=int, help="repetitions per case (full: 5, memory 3)")
    ap.add_argument("--cases", default="ingest,ingest_ext4,forward,e2e,memory,scale,wan")
    ap.add_argument("--workdir", default="/var/tmp", help="where the temporary directory goes")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-wait", action="store_true",
                    help="do not wait for a quiet machine before each timed section")
    ap.add_argument("--output", help="JSON file (default bench/results/latest[-quick].json)")
    ap.add_argument("--verbose", action="store_true",
                    help="print every detail line too (always written to the .log beside the JSON)")
    args = ap.parse_args()
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for exe in ("gateway/daemon/dirgwd", "tools/dirgw/dirgw", "tools/synth/dirgw-synth"):
        if not os.path.exists(os.path.join(args.build_dir, exe)):
            sys.exit(f"bench: {exe} not built in {args.build_dir} (make bench builds it)")
    for tool in ("storescu", "storescp", "Orthanc", "curl"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (make deps installs it)")

    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])
    # DCMTK leaves Nagle on unless told: every baseline runs with TCP_NODELAY=1 (storescu,
    # storescp, Orthanc's DICOM server). dirgwd gets TCP_NODELAY=0 and sets it itself.
    os.environ["TCP_NODELAY"] = "1"
    params = dict(QUICK if args.quick else FULL)
    if args.reps:
        params["reps"] = params["memory_reps"] = params["wan_reps"] = args.reps
    out = args.output or os.path.join(RESULTS_DIR, "latest-quick.json" if args.quick else "latest.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    detail = quiet_logs(os.path.splitext(out)[0] + ".log", args.verbose)
    work = tempfile.mkdtemp(prefix="dirgw-bench-", dir=args.workdir)
    progress(f"bench: {'quick' if args.quick else 'full'} run, {params['reps']} repetition(s), "
             f"cases {', '.join(args.cases)}; details in {os.path.relpath(detail)}")
    log(f"bench: {'quick' if args.quick else 'full'} run, {params['reps']} repetition(s), in {work}")
    bench = Bench(args, params, work)
    load_before = os.getloadavg()
    if load_before[0] > 1.0:
        bench.res.note(f"load average {load_before[0]:.2f} at the start: the machine was not idle, "
                       "and the numbers may be noisy")
    started = time.monotonic()
    failed = []
    try:
        bench.make_data()
        for case in args.cases:
            t0 = time.monotonic()
            try:
                getattr(bench, "case_" + case)()
            except Exception as e:  # one broken case must not hide the others' numbers
                log(traceback.format_exc())
                failed.append(case)
                bench.res.note(f"case {case} failed: {e}")
            finally:
                bench.empty_trash()
            progress(f"case {case}: {time.monotonic() - t0:.0f}s"
                     + (" FAILED (see the log)" if case in failed else ""))
    finally:
        harness._stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    if bench.waited > 1:
        bench.res.note(f"waited {bench.waited:.0f}s in all for a quiet machine; "
                       f"{bench.busy_sections} timed section(s) ran while it was still busy")
    table = bench.res.table()
    summary = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if args.quick else "full",
        "params": params, "batch_max_instances": BATCH, "elapsed_s": round(elapsed, 1),
        "machine": machine(), "workdir": args.workdir, "rows": bench.res.rows,
        "notes": bench.res.notes, "failed_cases": failed, "table": table,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    print()
    print(f"dirgw bench ({summary['mode']}, {params['reps']} repetition(s), {elapsed / 60:.1f} min) "
          f"on {summary['machine']['cpu']}, {summary['machine']['cores']} cores; "
          f"ratio: dirgwd's performance / the baseline's (>1: dirgwd faster), "
          f"except catalog scale (time / time)")
    print(table)
    for n in bench.res.notes:
        print("note:", n)
    print(f"results: {os.path.relpath(out)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
