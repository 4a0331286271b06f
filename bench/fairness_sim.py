#!/usr/bin/env python3
"""A discrete-event model of many gateways behind one rate-limited repository (issue 15,
docs/scaling.md): why self-pacing (retry.pacing) is off by default.

The repository is the proxy of tests/integration/test_many_gateways.py: a token bucket admitting
RATE requests/s (holding 2 s) that answers 429 `Retry-After: 1` beyond. Each gateway sends one
request at a time; a refused one holds the gateway for Retry-After plus dirgwd's jitter (up to
250 ms). With `--pacing`, each gateway also runs a model of gateway/scheduler/pacing.cpp (AIMD
on its request rate, jittered spacing, one cut per hold). Printed: over many seeds, the largest
deviation of a gateway's share from an equal one (the window in which every gateway has a
backlog, as the test measures it), and how often it is over 25 %.

    python3 bench/fairness_sim.py                 # Retry-After holds alone
    python3 bench/fairness_sim.py --pacing        # with self-pacing (defaults 0.5 / 1)
    python3 bench/fairness_sim.py --instances 150 --overhead 0.05 0.15

A model, not a measurement: the integration test measures real dirgwd processes."""

import argparse
import heapq
import random
import statistics


class Pacer:
    """gateway/scheduler/pacing.cpp, in brief."""

    def __init__(self, rng, decrease, increase, min_rate=0.1, jitter=0.5):
        self.decrease, self.increase = decrease, increase
        self.min_rate, self.jitter = min_rate, jitter
        self.rng = rng
        self.active = False
        self.rate = 0.0
        self.grow_from = 0.0
        self.last_start = self.prev_start = None
        self.held_since_start = False
        self.admitted_since_cut = False
        self.interval = 0.0

    def grow(self, now):
        self.rate += self.increase * min(max(now - self.grow_from, 0.0), max(1.0, 2.0 / self.rate))
        self.grow_from = max(self.grow_from, now)

    def wait_until(self, now):
        if not self.active or self.last_start is None:
            return None
        due = self.last_start + self.interval
        return due if due > now else None

    def on_request(self, now):
        self.prev_start = None if self.held_since_start else self.last_start
        self.last_start, self.held_since_start = now, False
        if self.active:
            self.interval = self.rng.uniform(1 - self.jitter, 1 + self.jitter) / self.rate

    def on_answer(self, now, admitted, resume_at=0.0):
        if admitted:
            self.admitted_since_cut = True
            if self.active:
                self.grow(now)
            return
        if self.prev_start is not None:
            gap = self.last_start - self.prev_start
        else:
            gap = now - self.last_start
        sent_at = 1.0 / max(gap, 0.001)
        if self.active:
            self.grow(now)
        current = min(self.rate, sent_at) if self.active and self.prev_start is not None else (
            self.rate if self.active else sent_at)
        if not self.active or self.admitted_since_cut:
            self.rate = max(self.min_rate, current * self.decrease)
        self.admitted_since_cut = False
        self.active = True
        self.grow_from = max(now, resume_at)
        self.held_since_start = True
        self.interval = 1.0 / self.rate


def run(seed, a):
    rng = random.Random(seed)
    tokens, last = float(2 * a.rate), 0.0

    def admit(t):
        nonlocal tokens, last
        tokens = min(2.0 * a.rate, tokens + (t - last) * a.rate)
        last = t
        if tokens >= 1:
            tokens -= 1
            return True
        return False

    pacers = [Pacer(random.Random(seed * 100 + g), a.decrease, a.increase) if a.pacing else None
              for g in range(a.gateways)]
    left, held, events, queue = [a.instances] * a.gateways, [0.0] * a.gateways, [], []
    for g in range(a.gateways):  # back from the outage at jittered times
        heapq.heappush(queue, (rng.uniform(0, 1.0), g, "try"))
    while queue:
        t, g, kind = heapq.heappop(queue)
        p = pacers[g]
        if kind == "try":
            if left[g] == 0:
                continue
            due = max(held[g], (p.wait_until(t) or 0) if p else 0)
            if due > t:
                heapq.heappush(queue, (due, g, "try"))
                continue
            if p:
                p.on_request(t)
            ok = admit(t)
            events.append((t, g, ok))
            heapq.heappush(queue, (t + rng.uniform(*(a.latency if ok else (0.003, 0.01))), g,
                                   "ok" if ok else "refused"))
            continue
        if kind == "ok":
            left[g] -= 1
            if p:
                p.on_answer(t, True)
        else:
            held[g] = max(held[g], t + 1.0 + rng.uniform(0, 0.25))
            if p:
                p.on_answer(t, False, held[g])
        heapq.heappush(queue, (t + rng.uniform(*a.overhead), g, "try"))
    admitted = [e for e in events if e[2]]
    start = max(min(t for t, g, _ in admitted if g == k) for k in range(a.gateways))
    end = min(max(t for t, g, _ in admitted if g == k) for k in range(a.gateways))
    per = [sum(1 for t, g, _ in admitted if g == k and start <= t <= end)
           for k in range(a.gateways)]
    total = sum(per)
    return max(abs(c / total * a.gateways - 1) for c in per), sum(1 for e in events if not e[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pacing", action="store_true")
    ap.add_argument("--decrease", type=float, default=0.5)
    ap.add_argument("--increase", type=float, default=1.0)
    ap.add_argument("--gateways", type=int, default=4)
    ap.add_argument("--rate", type=float, default=8)
    ap.add_argument("--instances", type=int, default=60)
    ap.add_argument("--latency", type=float, nargs=2, default=(0.03, 0.12))
    ap.add_argument("--overhead", type=float, nargs=2, default=(0.005, 0.03))
    ap.add_argument("--seeds", type=int, default=200)
    a = ap.parse_args()
    runs = [run(seed, a) for seed in range(a.seeds)]
    devs = sorted(d for d, _ in runs)
    print(f"pacing {'on' if a.pacing else 'off'}, {a.gateways} gateways x {a.instances}, "
          f"{a.seeds} seeds: max deviation median {statistics.median(devs) * 100:.0f} %, "
          f"90th percentile {devs[int(0.9 * len(devs))] * 100:.0f} %; over 25 % in "
          f"{sum(d > 0.25 for d in devs)}; refused requests per run "
          f"{statistics.median(r for _, r in runs):.0f}")


if __name__ == "__main__":
    main()
