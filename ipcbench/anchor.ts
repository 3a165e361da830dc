/**
 * The study's own experiment, in Python, as an anchor on this machine: its two
 * cases (a `multiprocessing.Queue` and a TCP socket, a counter bounced 10,000
 * times), corrected so that every echoed value is checked and both the study's
 * figure (per CPU-second of the parent) and the wall-time rate are reported.
 * The script is written to a temporary directory and removed afterwards.
 *
 * @module
 */
import { errorMessage } from "../shared/errors.ts";
import { killAfter, type PreparedPeer, preparePeer, PYTHON_RECV_EXACT } from "../shared/peer.ts";

/** The corrected study program: prints one JSON line per case and run. */
export const STUDY_PYTHON = `
import json, multiprocessing as mp, socket, struct, sys, time

def high_child(q_in, q_out):
    while True:
        x = q_in.get()
        if x == 0:
            break
        q_out.put(x + 1)

def high_level(n):
    q_in, q_out = mp.Queue(), mp.Queue()
    p = mp.Process(target=high_child, args=(q_in, q_out))
    p.start()
    q_in.put(1)
    if q_out.get(timeout=30) != 2:
        raise ValueError("bad handshake")
    x = 2
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(n):
        x += 1
        q_in.put(x)
        got = q_out.get(timeout=30)
        if got != x + 1:
            raise ValueError(f"round trip {i}: sent {x}, got {got}")
        x = got
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    q_in.put(0)
    p.join(30)
    return cpu, wall

${PYTHON_RECV_EXACT}
def low_child(port):
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = recv_exact(conn, 4)
            if data is None:
                break
            conn.sendall(struct.pack("!I", struct.unpack("!I", data)[0] + 1))

def low_level(n):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        p = mp.Process(target=low_child, args=(server.getsockname()[1],))
        p.start()
        server.settimeout(30)
        conn, _ = server.accept()
        conn.settimeout(30)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        x = 1
        c0, w0 = time.process_time(), time.perf_counter()
        with conn:
            for i in range(n):
                conn.sendall(struct.pack("!I", x))
                got = struct.unpack("!I", recv_exact(conn, 4))[0]
                if got != x + 1:
                    raise ValueError(f"round trip {i}: sent {x}, got {got}")
                x = got + 1
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        p.join(30)
        return cpu, wall

if __name__ == "__main__":
    n, repeats = int(sys.argv[1]), int(sys.argv[2])
    for run in range(1, repeats + 1):
        for case, fn in (("high", high_level), ("low", low_level)):
            cpu, wall = fn(n)
            print(json.dumps({"run": run, "case": case, "cpu": cpu, "wall": wall}), flush=True)
`;

/** One case of one run of the Python anchor. */
export interface PythonRun {
  run: number;
  case: "high" | "low";
  /** Parent CPU seconds (`time.process_time()`), and wall seconds. */
  cpu: number;
  wall: number;
}

/** Runs the Python anchor; `null` (with the reason) when python3 is missing or fails. */
export async function runPythonAnchor(
  roundTrips: number,
  repeats: number,
  timeoutMs: number,
): Promise<{ runs: PythonRun[] } | { skipped: string }> {
  let program: PreparedPeer;
  try {
    program = await preparePeer({ name: "study", language: "python", source: STUDY_PYTHON });
  } catch (error) {
    return { skipped: `the Python anchor: ${errorMessage(error)}` };
  }
  try {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program.argv[0], {
        args: [...program.argv.slice(1), String(roundTrips), String(repeats)],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      return { skipped: `the Python anchor: python3 could not start (${error})` };
    }
    const cancel = killAfter(child, timeoutMs);
    const output = await child.output().finally(cancel);
    if (!output.success) {
      const why = new TextDecoder().decode(output.stderr).trim().split("\n").pop();
      return { skipped: `the Python anchor failed (${why || `exit ${output.code}`})` };
    }
    const runs = new TextDecoder().decode(output.stdout).trim().split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as PythonRun);
    return { runs };
  } finally {
    await program.close();
  }
}

/**
 * The study's queue as a per-placement anchor: a counter bounced over two
 * `multiprocessing.Queue`s (every value checked), parent on CPU A and child on
 * CPU B (`-1`: unpinned). Prints one JSON line: round trips per second, p50/p99.
 */
export const QUEUE_PYTHON = `
import json, multiprocessing as mp, os, sys, time

def child(q_in, q_out, cpu):
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    while True:
        x = q_in.get()
        if x == 0:
            break
        q_out.put(x + 1)

if __name__ == "__main__":
    n, cpu_a, cpu_b = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if cpu_a >= 0:
        os.sched_setaffinity(0, {cpu_a})
    q_in, q_out = mp.Queue(), mp.Queue()
    p = mp.Process(target=child, args=(q_in, q_out, cpu_b))
    p.start()
    x = 1
    warm = min(1000, n)
    samples = []
    for i in range(-warm, n):
        if i == 0:
            start = time.perf_counter()
        t0 = time.perf_counter()
        q_in.put(x)
        got = q_out.get(timeout=30)
        if got != x + 1:
            raise ValueError(f"round trip {i}: sent {x}, got {got}")
        x = got + 1
        if i >= 0:
            samples.append((time.perf_counter() - t0) * 1e6)
    wall = time.perf_counter() - start
    q_in.put(0)
    p.join(30)
    samples.sort()
    print(json.dumps({"roundTripsPerSec": round(n / wall), "p50Us": round(samples[n // 2], 3),
                      "p99Us": round(samples[int(n * 0.99)], 3)}), flush=True)
`;

/** One run of the Queue anchor. */
export interface QueueAnchor {
  roundTripsPerSec: number;
  p50Us: number;
  p99Us: number;
}

/** Runs the Queue anchor at a placement (`-1`: unpinned); `null` when python3 fails. */
export async function runQueueAnchor(
  roundTrips: number,
  cpuA: number,
  cpuB: number,
  timeoutMs = 120_000,
): Promise<QueueAnchor | null> {
  const dir = await Deno.makeTempDir({ prefix: "ipcbench-pyq-" });
  try {
    // Not queue.py: that name would shadow the standard library's `queue`.
    const script = `${dir}/pingpong_queue.py`;
    await Deno.writeTextFile(script, QUEUE_PYTHON);
    const child = new Deno.Command("python3", {
      args: [script, String(roundTrips), String(cpuA), String(cpuB)],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, timeoutMs);
    const output = await child.output().finally(() => clearTimeout(timer));
    if (!output.success) return null;
    return JSON.parse(new TextDecoder().decode(output.stdout).trim()) as QueueAnchor;
  } catch {
    return null;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
