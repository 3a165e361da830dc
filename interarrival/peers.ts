/**
 * The study-style Python client and server (stdlib only), the baselines
 * `interarrival bench` compares against.
 * Embedded as strings (see shared/peer.ts) so that bundles and compiled
 * binaries carry them; `preparePeer` writes them out to run it.
 *
 * @module
 */
import type { EmbeddedProgram } from "../shared/peer.ts";

/** The study-style client, as `preparePeer` takes it. */
export const STUDY_CLIENT_PEER: EmbeddedProgram = {
  name: "study_client",
  language: "python",
  source: String.raw`#!/usr/bin/env python3
"""Study-style client (stdlib only), the baseline 'interarrival bench' compares against.

Written the way the study's ASSIGNMENT2_CLIENT was: one thread per worker, each
with its own connection, and 'time.sleep(gap)' between sends (sleep-after-send,
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
`,
};

/** The study-style server, as `preparePeer` takes it. */
export const STUDY_SERVER_PEER: EmbeddedProgram = {
  name: "study_server",
  language: "python",
  source: String.raw`#!/usr/bin/env python3
"""Study-style server (stdlib only), the baseline 'interarrival bench' compares against.

Written the way the study's ASSIGNMENT2_SERVER was: a thread per connection,
'recv(1024)' in a loop, each recv counted as one "reception" (so messages merged
in one read, or split across two, are miscounted: the study's mistake, kept on
purpose). It stops on SIGTERM or SIGINT and prints one JSON line with the counts
and the averages the study printed.

usage: study_server.py PORT
"""
import json
import signal
import socket
import sys
import threading
import time

lock = threading.Lock()
conn_times, data_gaps = [], []
receptions = [0]
newlines = [0]
last_conn = [None]


def handle(conn):
    conn.sendall(b"Hello! You are connected to the server.\n")
    last = None
    with conn:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            now = time.perf_counter()
            with lock:
                receptions[0] += 1
                newlines[0] += data.count(b"\n")
                if last is not None:
                    data_gaps.append((now - last) * 1000)
            last = now


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1024)
    stop = threading.Event()

    def on_signal(_signum, _frame):
        stop.set()
        server.close()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(json.dumps({"port": server.getsockname()[1]}), flush=True)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except OSError:
            break
        now = time.perf_counter()
        with lock:
            if last_conn[0] is not None:
                conn_times.append((now - last_conn[0]) * 1000)
            last_conn[0] = now
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
    time.sleep(0.2)
    with lock:
        print(json.dumps({
            "receptions": receptions[0],
            "messages": newlines[0],
            "avg_connection_ms": sum(conn_times) / len(conn_times) if conn_times else None,
            "avg_data_ms": sum(data_gaps) / len(data_gaps) if data_gaps else None,
        }), flush=True)


if __name__ == "__main__":
    main()
`,
};
