/**
 * Exactness of `scanner` inside a private network namespace: open listeners on
 * known ports, filtered ports made by an nftables drop rule, closed elsewhere.
 * Never run against the shared host loopback.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { capture, type Captured } from "./_command.ts";
import { netnsTest } from "./_netns.ts";
import { MODES } from "../shared/mode.ts";
import type { ScanResult } from "../scanner/scan.ts";
import type { PortState } from "../scanner/probe.ts";
import { parsePorts } from "../scanner/targets.ts";
import { loadServices } from "../scanner/services.ts";
import { dropSyns, runScanner, scanLocalhost, scannerArgs } from "./_scanner.ts";

// Imported too, so the test's own type check covers the workers' graph: deno test
// checks a worker's modules when it starts, and on a loaded machine a cold check
// outlasted the runtime's 30 s worker start limit.
import "../scanner/worker_entry.ts";

const OPEN = [22, 80, 443, 1500];
const FILTERED = [3000, 3001, 3002, 3003];
const PORT_SPEC = "1-1100,1500,3000-3003,3100-3110";

function run(command: string, args: string[]): Promise<Captured> {
  return capture(command, args);
}

/** Drops SYNs to the filtered ports (inside the namespace only). */
function addDropRule(ports: number[]): Promise<void> {
  return dropSyns(ports.join(", "));
}

function listenAll(ports: number[]): Deno.Listener[] {
  return ports.map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
}

function portsIn(result: ScanResult, state: PortState): number[] {
  return result.hosts[0].ports.filter((port) => port.state === state).map((port) => port.port);
}

function expectExact(result: ScanResult, total: number): void {
  assertEquals(portsIn(result, "open"), OPEN);
  assertEquals(portsIn(result, "filtered"), FILTERED);
  assertEquals(result.hosts[0].counts, {
    open: OPEN.length,
    closed: total - OPEN.length - FILTERED.length,
    filtered: FILTERED.length,
  });
  for (const port of result.hosts[0].ports) {
    const reason = { open: "syn-ack", closed: "conn-refused", filtered: "no-response" }[port.state];
    assertEquals(port.reason, reason, `port ${port.port}`);
  }
}

netnsTest(
  import.meta.url,
  "scanner: open, closed and filtered are exact in all four modes and match nmap -sT",
  async () => {
    await addDropRule(FILTERED);
    const listeners = listenAll(OPEN);
    try {
      const ports = parsePorts(PORT_SPEC);
      for (const mode of MODES) {
        // Sequential waits out each filtered port: scan fewer ports there.
        const list = mode === "sequential" ? ports.filter((p) => p >= 1000) : ports;
        const result = await scanLocalhost(list, {
          mode,
          workers: 3,
          concurrency: 64,
          timeoutMs: 300,
          randomize: mode === "async",
        });
        if (mode === "sequential") {
          assertEquals(portsIn(result, "open"), [1500]);
          assertEquals(portsIn(result, "filtered"), FILTERED);
          assertEquals(result.hosts[0].counts.closed, list.length - 5);
        } else expectExact(result, list.length);
        assertEquals(result.hosts[0].ports.map((p) => p.port), list, mode);
      }
      // nmap -sT on the same namespace finds the same sets.
      const nmap = await run("nmap", [
        "-sT",
        "-Pn",
        "-n",
        "-T4",
        "-p",
        PORT_SPEC,
        "127.0.0.1",
        "-oG",
        "-",
      ]);
      if (nmap.code === 0) {
        const line = nmap.stdout.split("\n").find((l) => l.includes("Ports:")) ?? "";
        const listed = [...line.matchAll(/(\d+)\/(open|filtered|closed)\//g)];
        assertEquals(listed.filter((m) => m[2] === "open").map((m) => Number(m[1])), OPEN);
        assertEquals(listed.filter((m) => m[2] === "filtered").map((m) => Number(m[1])), FILTERED);
      }
    } finally {
      for (const listener of listeners) listener.close();
    }
  },
);

netnsTest(
  import.meta.url,
  "scanner: exact at --concurrency 2000 in one isolate (the gate keeps 128 connects in flight)",
  async () => {
    const filtered = Array.from({ length: 600 }, (_, i) => 5000 + i);
    await dropSyns("5000-5599", "t");
    const open = [4000, 4500, 5900];
    const listeners = listenAll(open);
    try {
      const ports = parsePorts("4000-6000");
      const result = await scanLocalhost(ports, {
        mode: "async",
        concurrency: 2000,
        timeoutMs: 400,
      });
      assertEquals(portsIn(result, "open"), open);
      assertEquals(portsIn(result, "filtered"), filtered);
      assertEquals(result.hosts[0].counts.closed, ports.length - open.length - filtered.length);
    } finally {
      for (const listener of listeners) listener.close();
    }
  },
);

netnsTest(
  import.meta.url,
  "scanner: a self-connect is closed, and a single local port (EADDRNOTAVAIL) loses nothing",
  async () => {
    // One ephemeral port: the connect to 40000 must come from 40000 (simultaneous open
    // with itself), and concurrent connects compete for that one local port.
    await Deno.writeTextFile("/proc/sys/net/ipv4/ip_local_port_range", "40000 40000");
    const ports = parsePorts("39990-40010");
    const result = await scanLocalhost(ports, {
      mode: "async",
      concurrency: 16,
      timeoutMs: 500,
    });
    assertEquals(result.hosts[0].counts, { open: 0, closed: 21, filtered: 0 });
    const self = result.hosts[0].ports.find((p) => p.port === 40000)!;
    assertEquals([self.state, self.reason], ["closed", "self-connect"]);
  },
);

netnsTest(
  import.meta.url,
  "scanner: a low open-file limit (prlimit 48) still gives complete, correct results",
  async () => {
    await addDropRule([7000, 7001]);
    const listeners = listenAll([6001, 6500]);
    try {
      for (const mode of ["async", "thread"]) {
        const result = await run("prlimit", [
          "--nofile=48:48",
          Deno.execPath(),
          ...scannerArgs([
            "127.0.0.1",
            "-p",
            "6000-7001",
            "--mode",
            mode,
            "--workers",
            "2",
            "--concurrency",
            "1000",
            "--timeout",
            "300",
            "--show",
            "open,filtered",
            "--json",
          ]),
        ]);
        assertEquals(result.code, 0, `${mode}: ${result.stderr}`);
        const doc = JSON.parse(result.stdout);
        const host = doc.results.hosts[0];
        assertEquals(host.counts, { open: 2, closed: 998, filtered: 2 }, mode);
        assertEquals(
          host.ports.map((p: { port: number; state: string }) => `${p.port}:${p.state}`),
          ["6001:open", "6500:open", "7000:filtered", "7001:filtered"],
        );
      }
    } finally {
      for (const listener of listeners) listener.close();
    }
  },
);

netnsTest(
  import.meta.url,
  "scanner: --json prints one document with every host, shown port and counts",
  async () => {
    const listeners = listenAll([8080]);
    try {
      const result = await runScanner([
        "127.0.0.1,::1",
        "-p",
        "8079-8081",
        "--show",
        "all",
        "--json",
      ]);
      assertEquals(result.code, 0, result.stderr);
      const doc = JSON.parse(result.stdout);
      assertEquals([doc.tool, doc.command, doc.error], ["scanner", "scan", null]);
      assertEquals(doc.results.hosts.map((h: { address: string }) => h.address), [
        "127.0.0.1",
        "::1",
      ]);
      const services = loadServices();
      assertEquals(doc.results.hosts[0].ports, [
        {
          port: 8079,
          state: "closed",
          reason: "conn-refused",
          service: services.get(8079) ?? null,
        },
        { port: 8080, state: "open", reason: "syn-ack", service: services.get(8080) ?? null },
        {
          port: 8081,
          state: "closed",
          reason: "conn-refused",
          service: services.get(8081) ?? null,
        },
      ]);
      // The listener is IPv4 only: ::1 has three closed ports.
      assertEquals(doc.results.hosts[1].counts, { open: 0, closed: 3, filtered: 0 });
      assertEquals(doc.results.mode, "async");
      assertOk(typeof doc.elapsed_ms === "number");
    } finally {
      for (const listener of listeners) listener.close();
    }
  },
);
