#!/usr/bin/env python3
"""Where the time goes when one association sends to dirgwd: the evidence behind the discussion in
docs/performance.md. Not part of `make bench` (it needs strace and perf, and the tracing itself
slows dirgwd down a little).

  python3 bench/profile_ingest.py --build-dir build-release [--instances 500] [--perf]

1. Sends N CT instances (one association, or --associations in parallel) to dirgwd with only fsync/fdatasync/rename traced
   (strace --seccomp-bpf, so other system calls run untraced): the count and total time of each,
   per instance. 2. The same with storescp for comparison (no fsync at all). 3. With --perf, a
   CPU profile of dirgwd during a third, untraced run (perf record, by symbol).
"""

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
from benchlib import harness, log  # noqa: E402

# "PID name(args) = 0 <secs>", or, when threads interleave, "PID <... name resumed>) = 0 <secs>".
SYSCALL = re.compile(r"^(?:\d+\s+)?(?:<\.\.\. )?(\w+)(?:\(| resumed>).*<(\d+\.\d+)>\s*$")


def strace_summary(path, n):
    count, total = collections.Counter(), collections.Counter()
    with open(path) as f:
        for line in f:
            m = SYSCALL.match(line.strip())
            if m:
                count[m.group(1)] += 1
                total[m.group(1)] += float(m.group(2))
    lines = []
    for name in sorted(count):
        lines.append(f"  {name:<10} {count[name]:>6} calls  {total[name]:7.3f} s total  "
                     f"{total[name] / count[name] * 1000:6.2f} ms each  "
                     f"{total[name] / n * 1000:6.2f} ms per instance")
    return "\n".join(lines)


def cpu_seconds(pid):
    """(user, system) CPU seconds of a process (all its threads, and its children that it has
    waited for: storescp --fork's) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return ((int(fields[11]) + int(fields[13])) / tick, (int(fields[12]) + int(fields[14])) / tick)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--associations", type=int, default=1, help="storescu processes in parallel")
    ap.add_argument("--perf", action="store_true")
    args = ap.parse_args()
    if not shutil.which("strace"):
        sys.exit("profile_ingest: strace is needed (apt-get install strace)")
    harness.enter_private_network([os.path.abspath(__file__)] + sys.argv[1:])
    os.environ["TCP_NODELAY"] = "1"
    work = tempfile.mkdtemp(prefix="dirgw-profile-", dir="/var/tmp")
    try:
        _, files = harness.synth(args.build_dir, os.path.join(work, "ct"), "CT", args.instances)
        n = len(files)
        groups = B.split(files, args.associations)

        # 1. dirgwd, untraced then traced
        for traced in (False, True):
            out = os.path.join(work, "strace.txt")
            # Started under strace (not attached): --seccomp-bpf then stops only on the traced
            # calls, and every other system call runs at full speed.
            wrapper = ["strace", "-f", "--seccomp-bpf", "-T", "-e",
                       "trace=fsync,fdatasync,rename,renameat,renameat2", "-o", out]
            gw = B.BenchGateway(args.build_dir, os.path.join(work, f"gw{int(traced)}"),
                                "http://127.0.0.1:9/dicom-web").start(wrapper if traced else ())
            os.sync()
            cpu0 = cpu_seconds(gw.pid)
            secs = B.storescu_parallel(gw.port, groups, gw.ae_title)
            user, system = (b - a for a, b in zip(cpu0, cpu_seconds(gw.pid)))
            if traced:  # stop dirgwd itself: strace would detach on SIGTERM and leave it running
                with open(f"/proc/{gw.pid}/task/{gw.pid}/children") as f:
                    for child in f.read().split():
                        os.kill(int(child), signal.SIGTERM)
                gw.process.proc.wait(60)
            gw.stop()
            print(f"dirgwd{' (strace)' if traced else ''}: {n} instances in {secs:.2f}s = "
                  f"{secs / n * 1000:.2f} ms per instance")
            if not traced:
                print(f"  dirgwd on CPU: {user:.2f}s user + {system:.2f}s system = "
                      f"{(user + system) / n * 1000:.2f} ms per instance; the rest of the wall time "
                      f"it waits (disk flushes, the network, the peer)")
            if traced:
                print(strace_summary(out, n))

        # 2. storescp
        scp = B.Storescp(work).start()
        os.sync()
        cpu0 = cpu_seconds(scp.process.proc.pid)
        secs = B.storescu_parallel(scp.port, groups, "STORESCP")
        time.sleep(0.5)  # the last --fork child is reaped
        user, system = (b - a for a, b in zip(cpu0, cpu_seconds(scp.process.proc.pid)))
        scp.stop()
        print(f"storescp: {n} instances in {secs:.2f}s = {secs / n * 1000:.2f} ms per instance")
        print(f"  storescp on CPU: {user:.2f}s user + {system:.2f}s system = "
              f"{(user + system) / n * 1000:.2f} ms per instance")

        # 3. perf
        if args.perf and shutil.which("perf"):
            gw = B.BenchGateway(args.build_dir, os.path.join(work, "gw-perf"),
                                "http://127.0.0.1:9/dicom-web").start()
            data = os.path.join(work, "perf.data")
            perf = subprocess.Popen(["perf", "record", "-F", "2000", "-o", data, "-p", str(gw.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            B.storescu_parallel(gw.port, groups, gw.ae_title)
            perf.send_signal(2)
            perf.wait()
            gw.stop()
            for sort, limit in (("dso", "1"), ("dso,sym", "1.5")):
                rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", sort,
                                      "--percent-limit", limit], capture_output=True, text=True)
                print(f"perf (dirgwd on-CPU samples, by {sort}):")
                print("\n".join(l for l in rep.stdout.splitlines() if l and not l.startswith("#")))
    finally:
        harness._stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
