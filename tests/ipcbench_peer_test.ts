import { assertEquals, assertOk, assertThrows } from "./_assert.ts";
import { decodeHello, encodeHello, parseHostPort, serve } from "../ipcbench/peer.ts";
import { measureCase } from "../ipcbench/measure.ts";
import { caseShapes } from "./_ipcbench.ts";
import { netnsUnavailableReason } from "./_netns.ts";
import { ProtocolError, UsageError } from "../shared/errors.ts";

const main = new URL("../ipcbench/main.ts", import.meta.url).pathname;

Deno.test("ipcbench peer: hello round trip and bad hellos", () => {
  assertEquals(decodeHello(encodeHello(65536)), 65536);
  assertEquals([...encodeHello(4)], [73, 80, 67, 66, 0, 0, 0, 4]);
  assertThrows(() => decodeHello(new TextEncoder().encode("HTTP/1.1")), ProtocolError, "IPCB");
  assertThrows(() => decodeHello(encodeHello(3)), ProtocolError, "outside 4..");
  assertThrows(() => decodeHello(new Uint8Array(3)), ProtocolError, "8 bytes");
});

Deno.test("ipcbench peer: HOST:PORT parsing", () => {
  assertEquals(parseHostPort("10.0.0.2:7077", "--peer"), { hostname: "10.0.0.2", port: 7077 });
  assertEquals(parseHostPort("[::1]:80", "--peer"), { hostname: "::1", port: 80 });
  assertThrows(() => parseHostPort("10.0.0.2", "--peer"), UsageError, "Invalid --peer '10.0.0.2'");
  assertThrows(() => parseHostPort("h:70000", "--listen"), UsageError, "Invalid --listen");
});

Deno.test("ipcbench peer: serve answers tcp and udp; a bad client costs only its connection", async () => {
  const controller = new AbortController();
  let port = 0;
  const served = serve({
    hostname: "127.0.0.1",
    port: 0,
    maxConnections: 4,
    idleMs: 2000,
    signal: controller.signal,
    onListening: (a) => (port = a.port),
  });
  try {
    const bad = await Deno.connect({ hostname: "127.0.0.1", port });
    await bad.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    const n = await bad.read(new Uint8Array(16));
    assertEquals(n, null);
    bad.close();
    for (const transport of ["tcp", "udp"] as const) {
      const result = await measureCase({
        transport,
        size: 64,
        roundTrips: 50,
        warmup: 5,
        runs: 2,
        pin: "none",
        timeoutMs: 5000,
        peer: { hostname: "127.0.0.1", port },
      });
      assertEquals(result.runs.map((r) => r.latencyUs.count), [50, 50]);
      assertEquals(result.echoHandled, null);
    }
  } finally {
    controller.abort();
  }
  const report = await served;
  assertEquals(report.messages, 105);
  assertEquals(report.datagrams, 105);
  assertEquals(report.connections, 2);
});

async function sh(...args: string[]): Promise<void> {
  const output = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" }).output();
  if (!output.success) {
    throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
}

const reason = netnsUnavailableReason();
Deno.test({
  name: "ipcbench peer: bench --peer across two namespaces joined by a veth pair" +
    (reason ? ` (skipped: ${reason})` : ""),
  ignore: reason !== null,
  fn: async () => {
    const tag = `${Deno.pid % 100000}`;
    const [a, b] = [`ipcb-a-${tag}`, `ipcb-b-${tag}`];
    const subnet = `10.${200 + (Deno.pid % 50)}.${Deno.pid % 250}`;
    let server: Deno.ChildProcess | null = null;
    try {
      await sh("ip", "netns", "add", a);
      await sh("ip", "netns", "add", b);
      await sh("ip", "link", "add", `vb${tag}a`, "type", "veth", "peer", "name", `vb${tag}b`);
      await sh("ip", "link", "set", `vb${tag}a`, "netns", a);
      await sh("ip", "link", "set", `vb${tag}b`, "netns", b);
      for (const [ns, dev, ip] of [[a, `vb${tag}a`, 1], [b, `vb${tag}b`, 2]] as const) {
        await sh("ip", "-n", ns, "addr", "add", `${subnet}.${ip}/24`, "dev", dev);
        await sh("ip", "-n", ns, "link", "set", dev, "up");
        await sh("ip", "-n", ns, "link", "set", "lo", "up");
      }
      const deno = ["run", "--quiet", "--allow-all", "--unstable-net", main];
      server = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          a,
          Deno.execPath(),
          ...deno,
          "serve",
          "--listen",
          `${subnet}.1:7077`,
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      // The server says where it listens on stderr once it is ready.
      const reader = server.stderr.getReader();
      let said = "";
      while (!said.includes("listening")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`serve ended: ${said}`);
        said += new TextDecoder().decode(value);
      }
      reader.releaseLock();
      server.stderr.cancel().catch(() => {});
      const output = await new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          b,
          Deno.execPath(),
          ...deno,
          "bench",
          "--peer",
          `${subnet}.1:7077`,
          "--transports",
          "tcp,udp,pipes",
          "--sizes",
          "64,4096",
          "--round-trips",
          "100",
          "--warmup",
          "10",
          "--runs",
          "2",
          "--pin",
          "none",
          "--json",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
      const stdout = new TextDecoder().decode(output.stdout);
      const doc = JSON.parse(stdout);
      assertEquals(caseShapes(stdout), [
        ["tcp", 64, 2],
        ["tcp", 4096, 2],
        ["udp", 64, 2],
        ["udp", 4096, 2],
      ]);
      assertOk(
        (doc.results.skipped as string[]).some((s) => s.startsWith("pipes with --pin none")),
        doc.results.skipped.join("; "),
      );
    } finally {
      try {
        server?.kill("SIGTERM");
        await server?.status;
      } catch {
        // Not started.
      }
      // Removing the namespaces removes the veth pair with them.
      await sh("ip", "netns", "del", a).catch(() => {});
      await sh("ip", "netns", "del", b).catch(() => {});
    }
  },
});
