"""The WAN case of `make bench` (bench/run.py --cases wan): forwarding over an emulated link,
inside the bench's private network namespace.

The link: an HTB class on lo that limits the rate of every packet sent to the repository's port
(the upload direction; answers and ACKs are not limited), then a fixed delay of half the round
trip for every packet in either direction (bench/nfqdelay.py on iptables' raw PREROUTING, after
the qdisc and after the loopback device has orphaned the packet: the sender's TCP sees a real
round trip and a real bottleneck, with slow start, congestion window and slow start after idle,
as over a WAN). This kernel has no netem. The repository is the null sink of the forward case
(nginx, stores nothing), so that only the link and the senders are measured.

Subjects, on the same link in the same run, each sending the same instances:
- plain TCP upload: one curl POST of the whole study as one multipart body, one connection (the
  baseline: what one TCP connection gets out of this link);
- curl x4: the study in bodies of 50, four curl processes at once, one connection each;
- dirgwd with concurrency 1, 2 (a STOW-RS destination's default) and 4 requests in flight, 50
  per request;
- Orthanc as a router: its DICOMweb client sends the study (held beforehand) in one request.
"""

import os
import shutil
import subprocess
import threading
import time

import benchlib as B
from benchlib import harness, log

# (label, tc rate, bits per second, round trip in ms)
LINKS = (("100 Mbit/s, 50 ms RTT", "100mbit", 100e6, 50),
         ("1 Gbit/s, 10 ms RTT", "1gbit", 1e9, 10))
TARGET_VS_TCP = 0.95   # dirgwd >= 95% of a plain single-connection TCP upload on the same link
TARGET_VS_ROUTER = 1.0  # and ahead of Orthanc as a router
# Requests in flight per dirgwd run; DEFAULT_LANES is a STOW-RS destination's default.
DEFAULT_LANES = harness.DEFAULT_STOW_LANES
LANES = (1, DEFAULT_LANES, 4)


def _run(args):
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip()[-300:]}")


class Link:
    """The emulated link to one TCP port on lo (see the module's docstring). Needs root in a
    network namespace of our own (tc, iptables); everything is undone by stop()."""

    def __init__(self, workdir, port, rate, rtt_ms, queue=7):
        self.dir = workdir
        self.port = port
        self.rate = rate
        self.rtt_ms = rtt_ms
        self.queue = queue
        self.rules = [["-t", "raw", "PREROUTING", "-i", "lo", "-p", "tcp", f"--{d}", str(port),
                       "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
                      for d in ("dport", "sport")]
        self.helper = None
        self.added = []

    @staticmethod
    def available():
        missing = [t for t in ("tc", "iptables") if not shutil.which(t)]
        return missing

    def start(self):
        try:
            _run(["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1"])
            self.added.append("qdisc")
            _run(["tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb",
                  "rate", "100gbit", "quantum", "60000"])
            _run(["tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb",
                  "rate", self.rate, "ceil", self.rate, "burst", "64k", "cburst", "64k",
                  "quantum", "60000"])
            _run(["tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
                  "u32", "match", "ip", "dport", str(self.port), "0xffff", "flowid", "1:2"])
            for rule in self.rules:
                _run(["iptables", rule[0], rule[1], "-A"] + rule[2:])
                self.added.append(rule)
            log_path = os.path.join(self.dir, f"nfqdelay-{self.port}-{self.rate}.log")
            self.helper = harness.Process(
                "nfqdelay", ["python3", os.path.join(B.HERE, "nfqdelay.py"), "--queue",
                             str(self.queue), "--delay-ms", str(self.rtt_ms / 2)], log_path)
            harness.wait_for("the delay helper", lambda: self._ready(log_path), 30, 0.05)
            return self
        except Exception:
            self.stop()
            raise

    def _ready(self, log_path):
        if not self.helper.alive():
            raise RuntimeError("nfqdelay exited: " + self.helper.log_text()[-500:])
        with open(log_path) as f:
            return "ready" in f.read()

    def check(self):
        """The rules let packets through undelayed when no listener is bound (--queue-bypass):
        a helper that died would quietly turn the WAN into loopback."""
        if not self.helper or not self.helper.alive():
            raise RuntimeError("the delay helper exited: the link was not emulated throughout")

    def rtt(self, tries=5):
        """The round trip as TCP sees it: median time of a connect() to the port, in ms."""
        import socket
        times = []
        for _ in range(tries):
            t0 = time.monotonic()
            with socket.create_connection(("127.0.0.1", self.port), timeout=10):
                times.append((time.monotonic() - t0) * 1000)
        return sorted(times)[len(times) // 2]

    def stop(self):
        if self.helper:
            self.helper.stop()
            self.helper = None
        for item in reversed(self.added):
            if item == "qdisc":
                subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)
            else:
                subprocess.run(["iptables", item[0], item[1], "-D"] + item[2:], capture_output=True)
        self.added = []


def _curl_parallel(url, groups, ctype):
    """One curl_stow per group, all at once; returns the wall time until the last is done."""
    errors = []

    def run(group):
        try:
            B.curl_stow(url, group, ctype)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(g,)) for g in groups if g]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - t0


def _synth(bench, key, count):
    if key not in bench.data:
        out = os.path.join(bench.work, "data", key)
        _, files = harness.synth(bench.build, out, "CT", count, seed=6, patient_index=6)
        bench.data[key] = {"files": files, "bytes": sum(os.path.getsize(f) for f in files)}


def case_wan(bench, batch, post_json):
    """Adds, per link, a group of rows to bench.res: inst/s and MB/s of every subject, dirgwd's
    ratio to the plain TCP upload and to Orthanc as a router."""
    missing = Link.available()
    if missing or os.geteuid() != 0 or os.environ.get("DIRGW_NETNS") != "1":
        bench.res.note("the WAN case needs root in a private network namespace and "
                       f"tc + iptables (missing: {', '.join(missing) or 'none'}): skipped")
        return
    if not B.NullSink.available():
        bench.res.note("nginx not installed: the WAN case was skipped (apt-get install nginx-light)")
        return
    key = "wan"
    _synth(bench, key, bench.p["wan_ct"])
    files = bench.data[key]["files"]
    n, mb = len(files), bench.mb(key)
    reps = bench.p["wan_reps"]
    w = bench.tmp("wan")
    whole, ctype = B.build_multipart_bodies(files, n, os.path.join(w, "whole"))
    bodies, ctype50 = B.build_multipart_bodies(files, batch, os.path.join(w, "bodies"))
    sink = B.NullSink(w, B.stow_answer(files)).start()
    router = B.orthanc(w, "router", dicom=True, servers={"dest": [sink.url + "/"]}).start()
    try:
        B.storescu_parallel(router.dicom_port, [files], "ROUTER")
        harness.wait_for("the router to hold the study", lambda: router.count_instances() == n,
                         120, 0.1)
        study = router.get("/studies")[0]

        def check_sink(what):
            got = sum(r[3] for r in sink.requests())
            if got < bench.data[key]["bytes"]:
                raise RuntimeError(f"{what}: the sink read {got} bytes, less than the study")
            sink.reset_log()

        for label, rate, bits, rtt in LINKS:
            group = f"6. WAN {label}: forward CT {bench.label(key)} to a null sink"
            link = Link(w, sink.port, rate, rtt).start()
            t = {"plain": [], "curl4": [], "c1": [], "c2": [], "c4": [], "router": []}
            between = []  # concurrency 1: ms per batch outside its HTTP request
            try:
                measured_rtt = link.rtt()
                for i in range(reps):
                    sink.reset_log()
                    bench.settle()
                    t["plain"].append(B.curl_stow(sink.url + "/studies", whole, ctype)[0])
                    check_sink("plain upload")
                    bench.settle()
                    t["curl4"].append(_curl_parallel(sink.url + "/studies", B.split(bodies, 4),
                                                     ctype50))
                    check_sink("curl x4")
                    for c in LANES:
                        secs, _ = bench.dirgw_forward(key, sink.url,
                                                      lambda _n: check_sink(f"dirgwd x{c}"),
                                                      concurrency=c)
                        t[f"c{c}"].append(secs)
                        if c == 1 and bench.last_forward["between_ms"] is not None:
                            between.append(bench.last_forward["between_ms"])
                    bench.settle()
                    t0 = time.monotonic()
                    post_json(router.url + "/dicom-web/servers/dest/stow",
                               {"Resources": [study], "Synchronous": True})
                    t["router"].append(time.monotonic() - t0)
                    check_sink("Orthanc router")
                    link.check()
                    log(f"wan {rate} rep {i + 1}: " + ", ".join(
                        f"{k} {100 * mb * 8e6 / v[-1] / bits:.0f}%" for k, v in t.items()))
            finally:
                link.stop()
            base, rbase = "plain TCP upload, 1 connection (baseline)", "Orthanc router, 1 request"
            add = bench.res.add
            add(group, base, "inst/s", [n / s for s in t["plain"]], [mb / s for s in t["plain"]])
            add(group, "curl x4 connections, 50/request", "inst/s", [n / s for s in t["curl4"]],
                [mb / s for s in t["curl4"]], baseline=base)
            add(group, rbase, "inst/s", [n / s for s in t["router"]], [mb / s for s in t["router"]],
                baseline=base)
            for c in LANES:
                name = f"dirgwd, concurrency {c}" + (" (default)" if c == DEFAULT_LANES else "")
                add(group, name, "inst/s", [n / s for s in t[f"c{c}"]],
                    [mb / s for s in t[f"c{c}"]], baseline=base, target=TARGET_VS_TCP)
                add(group, f"{name}, vs router", "inst/s", [n / s for s in t[f"c{c}"]],
                    [mb / s for s in t[f"c{c}"]], baseline=rbase, target=TARGET_VS_ROUTER)
            add(group, "(info) dirgwd x1: between requests, per batch", "ms", between,
                better="lower")
            add(group, "(info) link: TCP connect time", "ms", [measured_rtt], better="lower")
            best = max(mb / s for s in t["plain"])
            add(group, "(info) plain TCP: share of the link, best", "%", [100 * best * 8e6 / bits])
    finally:
        router.stop()
        sink.stop()
        bench.clean(w)

