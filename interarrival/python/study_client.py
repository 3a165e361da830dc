#!/usr/bin/env python3
"""Study-style client (stdlib only), the baseline `interarrival bench` compares against.

Written the way the study's ASSIGNMENT2_CLIENT was: one thread per worker, each
with its own connection, and `time.sleep(gap)` between sends (sleep-after-send,
so lateness accumulates). Unlike the study it records what it did: it prints one
JSON line with, per worker, the drawn gaps and the send times (perf_counter, s).

usage: study_client.py HOST PORT WORKERS INTERVALS DIST PARAM SEED
"""
import json
import random
import socket
import sys
import threading
import time


def draw(rng, dist, param):
    if dist == "d":
        return param
    if dist == "u":
        return rng.uniform(0, param)
    if dist == "e":
        return rng.expovariate(param)
    raise SystemExit(f"unknown distribution {dist}")


def worker(number, host, port, intervals, dist, param, seed, out):
    rng = random.Random(seed * 1000 + number)
    gaps, sends = [], []
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.recv(1024)  # the greeting
        for event in range(1, intervals + 2):
            if event > 1:
                gap = draw(rng, dist, param)
                gaps.append(gap)
                time.sleep(gap)
            sends.append(time.perf_counter())
            line = f"Worker {number}, Event {event}, Timestamp {int(time.time() * 1000)}\n"
            sock.sendall(line.encode())
    out[number] = {"gaps": gaps, "sends": sends}


def main():
    host, port, workers, intervals, dist, param, seed = sys.argv[1:8]
    out = {}
    threads = [
        threading.Thread(
            target=worker,
            args=(w, host, int(port), int(intervals), dist, float(param), int(seed), out),
        )
        for w in range(1, int(workers) + 1)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    print(json.dumps({"elapsed": elapsed, "workers": [out[w] for w in sorted(out)]}))


if __name__ == "__main__":
    main()
