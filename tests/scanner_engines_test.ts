/**
 * Conformance of the two connect engines (`ffi`, `connect`) in all four modes,
 * inside a private network namespace: open, closed, filtered by nftables,
 * self-connect, a single local port (EADDRNOTAVAIL) and a low `ulimit -n` give
 * identical states and reasons.
 */
import { assertEquals } from "./_assert.ts";
import { capture } from "./_command.ts";
import { netnsTest } from "./_netns.ts";
import { MODES } from "../shared/mode.ts";
import type { ScanResult } from "../scanner/scan.ts";
import type { EngineName } from "../scanner/engines.ts";
import { parsePorts } from "../scanner/targets.ts";
import { dropSyns, scanLocalhost, scannerArgs } from "./_scanner.ts";

// Imported too, so the test's own type check covers the workers' graph: deno test
// checks a worker's modules when it starts, and on a loaded machine a cold check
// outlasted the runtime's 30 s worker start limit.
import "../scanner/worker_entry.ts";

const ENGINES: EngineName[] = ["ffi", "connect"];
/** Every engine in every mode: the conformance grid. */
const ENGINES_BY_MODES = ENGINES.flatMap((engine) => MODES.map((mode) => [engine, mode] as const));

/** Every port as `port:state:reason`. */
function lines(result: ScanResult): string[] {
  return result.hosts[0].ports.map((p) => `${p.port}:${p.state}:${p.reason}`);
}

function expected(ports: number[], open: number[], filtered: number[]): string[] {
  return ports.map((port) =>
    open.includes(port)
      ? `${port}:open:syn-ack`
      : filtered.includes(port)
      ? `${port}:filtered:no-response`
      : `${port}:closed:conn-refused`
  );
}

netnsTest(
  import.meta.url,
  "scanner engines: open, closed and filtered identical for ffi and connect in every mode",
  async () => {
    const open = [22, 80, 1500, 2001];
    const filtered = [100, 1999, 2000];
    await dropSyns(filtered.join(", "), "engines");
    const listeners = open.map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
    try {
      const ports = parsePorts("1-2100");
      for (const [engine, mode] of ENGINES_BY_MODES) {
        const randomize = mode === "async";
        const result = await scanLocalhost(ports, {
          mode,
          engine,
          workers: 2,
          timeoutMs: 300,
          randomize,
        });
        const counts = { open: open.length, closed: ports.length - 7, filtered: filtered.length };
        assertEquals(
          [result.engine, result.interrupted, result.hosts[0].counts],
          [engine, false, counts],
          `${engine}/${mode}`,
        );
        assertEquals(lines(result), expected(ports, open, filtered), `${engine}/${mode}`);
      }
    } finally {
      for (const listener of listeners) listener.close();
    }
  },
  { timeout: 240_000 },
);

netnsTest(
  import.meta.url,
  "scanner engines: self-connect and a single local port (EADDRNOTAVAIL) identical in every mode",
  async () => {
    // One ephemeral port: the connect to 40000 must come from 40000 (a TCP
    // simultaneous open with itself), and connects compete for that one port.
    await Deno.writeTextFile("/proc/sys/net/ipv4/ip_local_port_range", "40000 40000");
    const ports = parsePorts("39990-40010");
    const want = ports.map((port) =>
      port === 40000 ? "40000:closed:self-connect" : `${port}:closed:conn-refused`
    );
    for (const [engine, mode] of ENGINES_BY_MODES) {
      const options = { mode, engine, workers: 2, concurrency: 16, timeoutMs: 500 };
      assertEquals(lines(await scanLocalhost(ports, options)), want, `${engine}/${mode}`);
    }
  },
  { timeout: 240_000 },
);

netnsTest(
  import.meta.url,
  "scanner engines: a low open-file limit (prlimit 40) gives the same exact result in every mode",
  async () => {
    await dropSyns("3000, 3001");
    const listeners = [2500, 2999].map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
    try {
      for (const [engine, mode] of ENGINES_BY_MODES) {
        const result = await capture("prlimit", [
          "--nofile=40:40",
          Deno.execPath(),
          ...scannerArgs([
            "127.0.0.1",
            "-p",
            mode === "sequential" ? "2400-3001" : "2000-3001",
            "--engine",
            engine,
            "--mode",
            mode,
            "--workers",
            "2",
            "--timeout",
            "300",
            "--show",
            "open,filtered",
            "--json",
          ]),
        ]);
        assertEquals(result.code, 0, `${engine}/${mode}: ${result.stderr}`);
        const doc = JSON.parse(result.stdout);
        const host = doc.results.hosts[0];
        assertEquals(doc.results.engine, engine);
        assertEquals(
          host.counts,
          { open: 2, closed: (mode === "sequential" ? 602 : 1002) - 4, filtered: 2 },
          `${engine}/${mode}`,
        );
        assertEquals(
          host.ports.map((p: { port: number; state: string; reason: string }) =>
            `${p.port}:${p.state}:${p.reason}`
          ),
          [
            "2500:open:syn-ack",
            "2999:open:syn-ack",
            "3000:filtered:no-response",
            "3001:filtered:no-response",
          ],
          `${engine}/${mode}`,
        );
      }
    } finally {
      for (const listener of listeners) listener.close();
    }
  },
  { timeout: 240_000 },
);

netnsTest(
  import.meta.url,
  "scanner engines: open and closed ports after a long run of dropped ones are still exact (ffi)",
  async () => {
    // After 16 pending connects in a row the ffi engine stops asking every connect a
    // second time and lets epoll decide: closed and open ports must read the same.
    const filtered = parsePorts("100-399");
    const open = [50, 400, 402, 405, 900];
    await dropSyns("100-399", "streak");
    const listeners = open.map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
    try {
      const ports = parsePorts("1-1000");
      for (const mode of ["async", "thread"] as const) {
        const result = await scanLocalhost(ports, {
          mode,
          engine: "ffi",
          workers: 2,
          timeoutMs: 300,
        });
        assertEquals(lines(result), expected(ports, open, filtered), mode);
      }
    } finally {
      for (const listener of listeners) listener.close();
    }
  },
  { timeout: 240_000 },
);
