#!/usr/bin/env python3
"""Study-style server (stdlib only), the baseline `interarrival bench` compares against.

Written the way the study's ASSIGNMENT2_SERVER was: a thread per connection,
`recv(1024)` in a loop, each recv counted as one "reception" (so messages merged
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
