#!/usr/bin/env python3
"""Many facilities, one repository (issue 15): several real dirgwd instances share one real
Orthanc behind a rate-limiting HTTP proxy written here.

The proxy admits N STOW-RS requests per second (a token bucket holding 2 s worth) and answers
429 with `Retry-After: 1` (delta-seconds) beyond; during a simulated outage it answers every
request 503 with an HTTP-date Retry-After. Each gateway has its own state directory, DICOM port
and URL path on the proxy (/gwK/dicom-web), so the proxy knows whose request it is.

  1. The repository is down (503) while every gateway is fed a study by storescu: each gets
     its backlog, tries, is told to wait, opens its circuit.
  2. The repository comes back: the requests of the first second after the first gateway is
     back stay bounded
     (Retry-After honoured, jittered circuit probes and holds: no stampede).
  3. While every gateway still has a backlog, the admitted rate is >= 90 % of N and each
     gateway's share is within 25 % of an equal share (Retry-After holds alone, the default:
     docs/scaling.md says why self-pacing is not on by default).
  4. Everything arrives once: Orthanc holds every instance, and the proxy admitted exactly one
     request per instance (one instance per request).
  5. A fifth gateway with self-pacing enabled (retry.pacing) is throttled: its `dirgw status`
     shows its paced rate, and its study still arrives whole.

Prints a figures line: gateways G, admitted r/s X of N (Y %), shares a/b/c/d (max dev Z %),
post-outage burst B."""

import email.utils
import http.client
import http.server
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import log  # noqa: E402

GATEWAYS = 4
# Each gateway's destination keeps the default concurrency (two requests in flight for STOW-RS),
# and a throttled answer (429, or 503 with Retry-After) drops it to one request at a time until
# a minute passes without one (scheduler::kOneLaneAfterThrottle). The bounds below count one
# request per gateway. Before that rule, the default two lanes left the shares 14-20 % off equal
# in four runs and 31 % in a fifth (clean clone, 2026-12-06) against the 25 % target.
LANES = harness.DEFAULT_STOW_LANES
LANES_WHILE_THROTTLED = 1
RATE = 8  # N: admitted requests per second
BURST = 2 * RATE  # the bucket holds 2 s: a gateway back within Retry-After * 1.25 + 0.25 s loses none
# Per gateway, one per request. 250 gives a window of about 100 s: with 60 (30 s) even a
# perfectly random fair allocation of the tokens misses 25 % one run in 13 (docs/scaling.md),
# and with 150 (about 55 s on a loaded machine) a clean-clone run on 2026-12-04 measured 26 %
# (shares 30/30/22/19) where the runs before gave 7-21 %: the share is a statistic of the
# hold-and-retry cycles, and more cycles narrow it.
INSTANCES = 250
OUTAGE_RETRY_AFTER = 2  # seconds, sent as an HTTP-date


class RateLimitProxy:
    """POST .../studies: admitted (forwarded to Orthanc) while the token bucket has a token,
    else 429 + Retry-After: 1; in outage mode 503 + Retry-After as an HTTP-date. Other requests
    pass. Every answer to a POST is recorded as (time, gateway, code)."""

    def __init__(self, orthanc_port, rate, burst):
        self.orthanc_port = orthanc_port
        self.rate, self.burst = float(rate), float(burst)
        self.tokens = self.burst
        self.last = time.monotonic()
        self.outage = False
        self.events = []  # (monotonic time, gateway, status)
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def forward(self, method, body=None):
                gw, _, rest = self.path.lstrip("/").partition("/")
                conn = http.client.HTTPConnection("127.0.0.1", proxy.orthanc_port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept", "content-length")}
                conn.request(method, "/" + rest, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                out = [(k, v) for k, v in r.getheaders() if k.lower() == "content-type"]
                conn.close()
                self.reply(r.status, data, out)
                return gw

            def do_GET(self):
                self.forward("GET")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                gw = self.path.lstrip("/").partition("/")[0]
                code = proxy.admit()
                with proxy.lock:
                    proxy.events.append((time.monotonic(), gw, code))
                if code == 503:
                    when = email.utils.formatdate(time.time() + OUTAGE_RETRY_AFTER, usegmt=True)
                    return self.reply(503, b"", [("Retry-After", when)])
                if code == 429:
                    return self.reply(429, b"", [("Retry-After", "1")])
                self.forward("POST", body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def admit(self):
        with self.lock:
            if self.outage:
                return 503
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 200
            return 429

    def set_rate(self, rate, empty=False):
        with self.lock:
            self.tokens = min(self.burst, self.tokens + (time.monotonic() - self.last) * self.rate)
            self.last = time.monotonic()
            self.rate = float(rate)
            if empty:
                self.tokens = 0.0

    def set_outage(self, on):
        with self.lock:
            if not on:  # the bucket starts full at recovery (nothing was admitted meanwhile)
                self.tokens, self.last = self.burst, time.monotonic()
            self.outage = on

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def figures(events, recovered_at, names):
    """The measurements, from the proxy's record."""
    after = [e for e in events if e[0] >= recovered_at]
    admitted = [e for e in after if e[2] == 200]
    missing = [g for g in names if not any(gw == g for _, gw, _ in admitted)]
    if missing:
        raise AssertionError(f"no request admitted after the outage for {missing}")
    first = {g: min(t for t, gw, c in admitted if gw == g) for g in names}
    last = {g: max(t for t, gw, c in admitted if gw == g) for g in names}
    # The window in which every gateway has a backlog: from the last one's first admitted
    # request to the first one's last (it has nothing more to send after that).
    start, end = max(first.values()), min(last.values())
    inside = [e for e in admitted if start <= e[0] <= end]
    per = {g: sum(1 for e in inside if e[1] == g) for g in names}
    total = sum(per.values())
    rate = total / (end - start) if end > start else 0.0
    shares = {g: per[g] / total if total else 0.0 for g in names}
    dev = max(abs(s * len(names) - 1.0) for s in shares.values()) if total else 1.0
    # The first second from the first request after recovery (the first gateway back).
    back_at = min(e[0] for e in after)
    burst = sum(1 for e in after if e[0] < back_at + 1.0)
    burst_admitted = sum(1 for e in admitted if e[0] < back_at + 1.0)
    back = sorted(min(t for t, gw, c in after if gw == g) - recovered_at
                  for g in names if any(gw == g for _, gw, _ in after))
    throttled = sum(1 for e in after if e[2] == 429)
    return dict(start=start, end=end, window=end - start, rate=rate, shares=shares, dev=dev,
                per=per, burst=burst, burst_admitted=burst_admitted, back=back,
                throttled=throttled, admitted=len(admitted))


def feed(build_dir, work, gateways):
    """One synthetic CT study per gateway (distinct patients and UIDs), sent by storescu."""
    uids, results = [], {}
    for i, gw in enumerate(gateways):
        out = os.path.join(work, f"study{i}")
        uid, _ = harness.synth(build_dir, out, "CT", instances=INSTANCES, seed=100 + i,
                               patient_index=i, extra=["--rows", "32", "--cols", "32"])
        uids.append(uid)

    def send(i, gw):
        results[i] = harness.storescu(gw.port, [os.path.join(work, f"study{i}")])

    threads = [threading.Thread(target=send, args=(i, gw)) for i, gw in enumerate(gateways)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return uids, results


def behind_proxy(build_dir, work, proxy, name, pacing=False):
    """A gateway sending one instance per request to its own path on the proxy."""
    return harness.Gateway(
        build_dir, work, f"http://127.0.0.1:{proxy.port}/{name}/dicom-web", name=name,
        stable_age="1s", batch_max=1, request_timeout="30s",
        retry="{ initial: 1s, max: 10s, retry_after_max: 30s"
              + (", pacing: { enabled: true }" if pacing else "") + " }",
        circuit="{ failures: 3, cooldown: 4s }")


def paced_gateway(build_dir, work, proxy, orthanc, check):
    """Item 5: a gateway with retry.pacing enabled, throttled from its first request (the
    bucket emptied, refilled at one request per 5 s), shows its paced rate and still delivers
    all."""
    name, count = "gw-paced", 6
    gw = behind_proxy(build_dir, work, proxy, name, pacing=True).start()
    before = orthanc.count_instances()
    proxy.set_rate(0.2, empty=True)
    out = os.path.join(work, "study-paced")
    uid, _ = harness.synth(build_dir, out, "CT", instances=count, seed=200, patient_index=9,
                           extra=["--rows", "32", "--cols", "32"])
    rc, text = harness.storescu(gw.port, [out])
    check(rc == 0, f"storescu to {name} exited {rc}: {text[-300:]}")
    harness.wait_for(f"{name} to be refused once", lambda: any(
        e[1] == name and e[2] == 429 for e in proxy.snapshot()), 60)
    rates = []

    def paced():
        rate = gw.status().get("destinations", [{}])[0].get("paced_requests_per_s")
        rates.append(rate)
        return rate is not None
    harness.wait_for(f"{name}'s status to show a paced rate", paced, 10, 0.2)
    proxy.set_rate(RATE)
    harness.wait_for(f"{name}'s study in Orthanc", lambda: orthanc.count_instances() >=
                     before + count, 60, interval=0.5)
    codes = [e[2] for e in proxy.snapshot() if e[1] == name]
    log(f"paced gateway: paced rate {rates[-1]:.2f} requests/s after a 429; "
        f"{codes.count(429)} refused, {codes.count(200)} admitted")
    check(codes.count(200) == count, f"{name}: {codes.count(200)} requests admitted for {count}")
    series = orthanc.get(f"/dicom-web/studies/{uid}/instances") or []
    check(len(series) == count, f"study {uid}: {len(series)} of {count} instances")
    gw.stop()


def main():
    args = harness.test_args(__file__)
    check = harness.Checks()
    work = harness.tempdir("dirgw-many-")
    began = time.monotonic()

    orthanc = harness.Orthanc(work).start()
    proxy = RateLimitProxy(orthanc.http_port, RATE, BURST)
    proxy.set_outage(True)
    names = [f"gw{i}" for i in range(GATEWAYS)]
    gateways = []
    for name in names:
        gateways.append(behind_proxy(args.build_dir, work, proxy, name).start())

    # 1. Outage: every gateway is fed, tries, is told to wait.
    uids, sent = feed(args.build_dir, work, gateways)
    for i, (rc, out) in sorted(sent.items()):
        check(rc == 0, f"storescu to gw{i} exited {rc}: {out[-300:]}")
    harness.wait_for("every gateway to be told 503 three times", lambda: all(
        sum(1 for e in proxy.snapshot() if e[1] == g and e[2] == 503) >= 3 for g in names), 60)
    outage_answers = sum(1 for e in proxy.snapshot() if e[2] == 503)
    log(f"outage: {outage_answers} requests answered 503; the repository comes back")
    # Told to wait: each gateway's status says it sends one request at a time for now.
    for gw in gateways:
        dest = gw.status().get("destinations", [{}])[0]
        check(dest.get("concurrency") == LANES and dest.get("one_request_at_a_time_until"),
              f"{gw.dir}: after 503 + Retry-After, status shows concurrency "
              f"{dest.get('concurrency')}, one request at a time until "
              f"{dest.get('one_request_at_a_time_until')}")

    # 2. Recovery.
    recovered_at = time.monotonic()
    proxy.set_outage(False)
    total = GATEWAYS * INSTANCES
    try:
        harness.wait_for(f"Orthanc to hold {total} instances",
                         lambda: orthanc.count_instances() >= total, 240, interval=0.5)
    except TimeoutError as e:
        check(False, str(e))
    time.sleep(0.5)
    events = proxy.snapshot()
    f = figures(events, recovered_at, names)
    shares = "/".join(f"{f['shares'][g] * 100:.0f}" for g in names)
    print(f"gateways {GATEWAYS}, admitted r/s {f['rate']:.2f} of {RATE} "
          f"({f['rate'] / RATE * 100:.0f} %), shares {shares} (max dev {f['dev'] * 100:.0f} %), "
          f"post-outage burst {f['burst']}", flush=True)
    log(f"window with every backlog non-empty: {f['window']:.1f} s, admitted per gateway "
        f"{f['per']}; 429s after recovery {f['throttled']}; first request after recovery per "
        f"gateway at +{', +'.join(f'{b:.2f}' for b in f['back'])} s; first second: "
        f"{f['burst']} requests, {f['burst_admitted']} admitted")

    # 3. The figures.
    check(f["window"] >= 5, f"window with every backlog non-empty too short: {f['window']:.1f} s")
    check(f["rate"] >= 0.9 * RATE, f"admitted rate {f['rate']:.2f} r/s under 90 % of {RATE}")
    # Fairness (issue 15): each gateway within 25 % of an equal share.
    check(f["dev"] <= 0.25, f"a gateway's share is {f['dev'] * 100:.0f} % off an equal share "
          f"(shares {shares}, target 25 %)")
    # No stampede: the first second after recovery sees at most what the bucket holds plus a
    # second's worth (admitted) and one refused request per gateway (told to wait, each sends
    # one request at a time; each then waits as told).
    bound = BURST + RATE + GATEWAYS * LANES_WHILE_THROTTLED
    check(f["burst"] <= bound, f"post-outage burst {f['burst']} requests > {bound}")
    # Every 429 is followed by a wait of at least Retry-After (1 s) per gateway, and a throttled
    # gateway has one request in flight: over the run a gateway is refused at most about once
    # per second.
    run = max(e[0] for e in events) - recovered_at
    check(f["throttled"] <= GATEWAYS * LANES_WHILE_THROTTLED * (run + 1),
          f"{f['throttled']} requests refused in {run:.0f} s: Retry-After not honoured")

    # 4. Everything once.
    check(orthanc.count_instances() == total,
          f"Orthanc holds {orthanc.count_instances()} instances, expected {total}")
    check(f["admitted"] == total, f"{f['admitted']} requests admitted for {total} instances "
          "(one instance per request): something was sent twice")
    for uid in uids:
        series = orthanc.get(f"/dicom-web/studies/{uid}/instances") or []
        check(len(series) == INSTANCES, f"study {uid}: {len(series)} of {INSTANCES} instances")
    for gw in gateways:
        st = gw.status()
        dest = st.get("destinations", [{}])[0]
        check(dest.get("pending_instances", -1) == 0,
              f"{gw.dir}: {dest.get('pending_instances')} instances still pending")
        # Self-pacing is opt-in: the default gateways hold as told and do not pace.
        check(dest.get("paced_requests_per_s") is None,
              f"{gw.dir}: paced at {dest.get('paced_requests_per_s')} without retry.pacing")

    # 5. Self-pacing where enabled.
    paced_gateway(args.build_dir, work, proxy, orthanc, check)
    for gw in gateways:
        gw.stop()
    proxy.close()
    orthanc.stop()
    log(f"wall time {time.monotonic() - began:.0f} s")
    return check.finish("many gateways: OK")


if __name__ == "__main__":
    sys.exit(main())
