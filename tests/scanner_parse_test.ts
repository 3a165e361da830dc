/** Parsing, rendering and usage errors of `scanner` (no network). */
import { assertEquals, assertOk, assertThrows } from "./_assert.ts";
import { assertUsageErrors } from "./_command.ts";
import { UsageError } from "../shared/errors.ts";
import {
  excludePorts,
  formatIPv6,
  parseIPv6,
  parsePorts,
  parseTarget,
  parseTargetFile,
  parseTargetList,
  resolveTargets,
  shuffled,
} from "../scanner/targets.ts";
import { parseServices } from "../scanner/services.ts";
import { formatCsv, formatGrep, formatTable, parseShow } from "../scanner/output.ts";
import { jsonResults } from "../scanner/records.ts";
import { countStates, type PortResult, type ScanResult } from "../scanner/scan.ts";
import { ConnectGate, firedLate } from "../scanner/probe.ts";
import { connectsPerIsolate } from "../scanner/limits.ts";

Deno.test("scanner ports: lists, ranges, open ranges, all, repeats", () => {
  assertEquals(parsePorts("22,80,1000-1003"), [22, 80, 1000, 1001, 1002, 1003]);
  assertEquals(parsePorts("80,22,80"), [22, 80]);
  assertEquals(parsePorts("-3"), [1, 2, 3]);
  assertEquals(parsePorts("65534-"), [65534, 65535]);
  assertEquals(parsePorts("5-10,1-6,8,3"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assertEquals(parsePorts("-").length, 65535);
  assertEquals(excludePorts(parsePorts("1-5"), [2, 4]), [1, 3, 5]);
});

Deno.test("scanner ports: bad specs are usage errors naming the value", () => {
  assertThrows(() => parsePorts("0"), UsageError, "'0' is out of range");
  assertThrows(() => parsePorts("65536"), UsageError, "'65536' is out of range");
  assertThrows(() => parsePorts("a-b"), UsageError, "'a-b' is not a port");
  assertThrows(() => parsePorts("200-100"), UsageError, "'200-100' is a reversed range");
  assertThrows(() => parsePorts(""), UsageError, "empty");
  assertThrows(() => parsePorts("22,,80"), UsageError, "empty item");
});

Deno.test("scanner targets: addresses, IPv6, CIDR blocks, names, comma lists", () => {
  assertEquals(parseTarget("10.0.0.1"), {
    kind: "address",
    text: "10.0.0.1",
    address: "10.0.0.1",
    family: 4,
  });
  assertEquals(parseTarget("[::1]"), { kind: "address", text: "[::1]", address: "::1", family: 6 });
  assertEquals(formatIPv6(parseIPv6("2001:db8:0:0:0:0:0:1")!), "2001:db8::1");
  const cidr = parseTarget("192.168.1.77/30");
  assertEquals(cidr.kind === "cidr" ? [cidr.first, cidr.count] : null, [3232235852n, 4n]);
  assertEquals(parseTargetList(["a.example,10.0.0.1", "b"]).map((t) => t.kind), [
    "name",
    "address",
    "name",
  ]);
  assertEquals(parseTargetFile("10.0.0.1\n# comment\n\nhost.example  # trailing\n"), [
    "10.0.0.1",
    "host.example",
  ]);
});

Deno.test("scanner targets: malformed CIDR, bad addresses, large blocks need --force", () => {
  assertThrows(() => parseTarget("10.0.0.0/33"), UsageError, "'10.0.0.0/33'");
  assertThrows(() => parseTarget("10.0.0/24"), UsageError, "'10.0.0/24'");
  assertThrows(() => parseTarget("10.0.0.0/x"), UsageError, "prefix length 'x'");
  assertThrows(() => parseTarget("300.1.1.1"), UsageError, "'300.1.1.1'");
  assertThrows(() => parseTarget("bad_host!"), UsageError, "'bad_host!'");
  assertThrows(() => parseTarget("10.0.0.0/15"), UsageError, "--force");
  assertEquals(parseTarget("10.0.0.0/15", true).kind, "cidr");
});

Deno.test("scanner targets: expansion, dedupe, families, unresolved names reported", async () => {
  const resolver = (name: string) => {
    if (name === "dual.test") {
      return Promise.resolve([{ address: "10.0.0.9", family: 4 }, {
        address: "fd00::9",
        family: 6,
      }]);
    }
    return Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
  };
  const specs = parseTargetList(["10.0.0.0/31,10.0.0.1", "dual.test", "nowhere.test"]);
  const all = await resolveTargets(specs, { resolver });
  assertEquals(all.targets.map((t) => t.address), ["10.0.0.0", "10.0.0.1", "10.0.0.9", "fd00::9"]);
  assertEquals(all.unresolved, [{ target: "nowhere.test", reason: "host name not found" }]);
  const v6 = await resolveTargets(parseTargetList(["dual.test"]), { resolver, family: 6 });
  assertEquals(v6.targets, [{ target: "dual.test", address: "fd00::9", family: 6 }]);
});

Deno.test("scanner: shuffle keeps every port once; services file parsing", () => {
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const ports = parsePorts("1-100");
  const mixed = shuffled(ports, random);
  assertOk(mixed.join() !== ports.join());
  assertEquals([...mixed].sort((a, b) => a - b), ports);
  const services = parseServices("ssh\t22/tcp\nssh\t22/udp\n# x\nhttp 80/tcp www\nwww 80/tcp\n");
  assertEquals([...services], [[22, "ssh"], [80, "http"]]);
  // A few ports: only their names, the same ones (not 2 or 8 for 22 and 80).
  const text = "ssh\t22/tcp\nssh\t22/udp\n# x\nhttp 80/tcp www\nwww 80/tcp\nx 2/tcp\ny 8/tcp\n";
  assertEquals([...parseServices(text, [80, 2])], [[80, "http"], [2, "x"]]);
  assertEquals([...parseServices(text, [8, 22, 9])], [[22, "ssh"], [8, "y"]]);
});

Deno.test("scanner: the connect gate shrinks below what is in flight and wakes waiters", async () => {
  const gate = new ConnectGate(4);
  for (let i = 0; i < 4; i++) await gate.acquire();
  let woke = false;
  const waiting = gate.acquire().then(() => (woke = true));
  gate.shrink();
  assertEquals(gate.limit, 3);
  gate.release(false);
  await Promise.resolve();
  assertEquals(woke, false);
  gate.release(false);
  await waiting;
  assertEquals([woke, gate.inFlight], [true, 3]);
});

function sampleResult(): ScanResult {
  const ports: PortResult[] = [
    { port: 22, state: "open", reason: "syn-ack", service: "ssh" },
    { port: 23, state: "closed", reason: "conn-refused", service: "telnet" },
    { port: 24, state: "filtered", reason: "no-response", service: null },
  ];
  return {
    hosts: [{ target: "box.test", address: "10.0.0.5", ports, counts: countStates(ports) }],
    portsPerHost: 3,
    probes: 3,
    mode: "async",
    engine: "connect",
    interrupted: false,
    workers: 1,
    concurrency: 1024,
    timeoutMs: 500,
    retries: 0,
    elapsedMs: 12.5,
  };
}

Deno.test("scanner output: table, csv, grep and json shapes", () => {
  const result = sampleResult();
  assertEquals(
    formatTable(result, parseShow("open")),
    [
      "Scan report for box.test (10.0.0.5)",
      "Not shown: 1 closed, 1 filtered ports",
      "PORT    STATE  SERVICE  REASON",
      "22/tcp  open   ssh      syn-ack",
      "10.0.0.5: 3 ports scanned: 1 open, 1 closed, 1 filtered",
      "",
      "Scanned 1 host, 3 ports in 0.01 s (async, connect engine, timeout 500 ms)",
      "",
    ].join("\n"),
  );
  assertEquals(
    formatCsv(result, parseShow("all")),
    "host,address,port,state,reason,service\nbox.test,10.0.0.5,22,open,syn-ack,ssh\n" +
      "box.test,10.0.0.5,23,closed,conn-refused,telnet\nbox.test,10.0.0.5,24,filtered,no-response,\n",
  );
  assertEquals(
    formatGrep(result, parseShow("open,filtered")),
    "Host: 10.0.0.5 (box.test)\tPorts: 22/open/tcp//ssh///, 24/filtered/tcp/////\t" +
      "Counts: 1 open, 1 closed, 1 filtered\n",
  );
  const json = jsonResults(result, parseShow("closed"));
  assertEquals((json.hosts as { ports: PortResult[] }[])[0].ports.map((p) => p.port), [23]);
  assertEquals((json.hosts as { counts: unknown }[])[0].counts, {
    open: 1,
    closed: 1,
    filtered: 1,
  });
  assertThrows(() => parseShow("opne"), UsageError, "'opne'");
});

Deno.test("scanner usage errors exit 2 and name the bad value", async () => {
  // None of these reaches the network: each fails while parsing.
  const cases: [string[], string][] = [
    [["127.0.0.1", "-p", "0"], "'0'"],
    [["127.0.0.1", "-p", "65536"], "'65536'"],
    [["127.0.0.1", "-p", "a-b"], "'a-b'"],
    [["127.0.0.1", "-p", "90-80"], "'90-80'"],
    [["127.0.0.1", "-p", ","], "','"],
    [["127.0.0.1", "--timeout", "0"], "'0'"],
    [["127.0.0.1", "--timeout", "-5"], "'-5'"],
    [["127.0.0.1", "--workers", "0"], "'0'"],
    [["10.0.0.0/40"], "'10.0.0.0/40'"],
    [["nonexistent.invalid"], "'nonexistent.invalid'"],
    [["127.0.0.1", "--mode", "fast"], "'fast'"],
    [["10.0.0.0/8"], "--force"],
    [["-iL", "/nonexistent/targets.txt"], "'/nonexistent/targets.txt'"],
    [["127.0.0.1", "--show", "opne"], "'opne'"],
    [["127.0.0.1", "-p", "22", "--exclude-ports", "22"], "No ports left"],
  ];
  await assertUsageErrors("scanner", cases);
});

Deno.test("scanner: connects per isolate stay under the open-file limit with a reserve", () => {
  assertEquals(connectsPerIsolate(48, 1), 24);
  assertEquals(connectsPerIsolate(48, 2), 12);
  assertEquals(connectsPerIsolate(1024, 8), 116);
  assertEquals(connectsPerIsolate(20000, 2), 9976);
  assertEquals(connectsPerIsolate(4, 8), 1);
  const gate = new ConnectGate(128);
  gate.capAt(10);
  gate.capAt(500);
  assertEquals([gate.max, gate.limit], [10, 10]);
});

Deno.test("scanner: a timer that fired late (starved isolate) is not a filtered verdict", () => {
  assertEquals(firedLate(505, 500), false);
  assertEquals(firedLate(600, 500), false);
  assertEquals(firedLate(601, 500), true);
  assertEquals(firedLate(40, 1), false);
  assertEquals(firedLate(52, 1), true);
});
