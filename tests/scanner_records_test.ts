/** Scan records: outcomes, JSON lines and grepable lines read back, merging (no sockets). */
import { assertEquals } from "./_assert.ts";
import {
  bannersOf,
  jsonlPort,
  jsonlSummary,
  mergeHosts,
  outcomesOf,
  parseGrepable,
  parseJsonl,
  portsOf,
} from "../scanner/records.ts";
import { countStates, type PortResult } from "../scanner/scan_result.ts";
import { formatGrep } from "../scanner/output.ts";
import { decodeCodes, encodeCodes } from "../scanner/ffi_chunk.ts";

const services = new Map([[22, "ssh"], [80, "http"]]);
const ports: PortResult[] = [
  { port: 21, state: "closed", reason: "conn-refused", service: null },
  { port: 22, state: "open", reason: "syn-ack", service: "ssh" },
  { port: 23, state: "closed", reason: "conn-refused", service: null },
  { port: 24, state: "filtered", reason: "no-response", service: null },
  { port: 80, state: "closed", reason: "self-connect", service: "http" },
];
const host = { target: "box", address: "10.0.0.5", ports, counts: countStates(ports) };

Deno.test("scanner records: outcomes are compact and expand back", () => {
  const outcomes = outcomesOf(ports);
  assertEquals(outcomes, {
    "closed/conn-refused": "21,23",
    "closed/self-connect": "80",
    "filtered/no-response": "24",
    "open/syn-ack": "22",
  });
  assertEquals(portsOf(outcomes, services), ports);
});

Deno.test("scanner records: JSON lines and grepable lines read back", () => {
  const text = jsonlPort(host, ports[1]) + jsonlSummary([host], { probes: 5 });
  const [back] = parseJsonl(text);
  assertEquals([back.address, back.ports, back.counts], [host.address, [ports[1]], host.counts]);
  assertEquals(back.outcomes, outcomesOf(ports));
  const result = {
    hosts: [host],
    portsPerHost: 5,
    probes: 5,
    mode: "async" as const,
    engine: "ffi" as const,
    workers: 1,
    concurrency: 1,
    timeoutMs: 500,
    retries: 1,
    elapsedMs: 1,
    interrupted: false,
  };
  const [grep] = parseGrepable(formatGrep(result, ["open", "filtered"]));
  assertEquals(grep.ports.map((p) => [p.port, p.state, p.service]), [[22, "open", "ssh"], [
    24,
    "filtered",
    null,
  ]]);
  assertEquals([grep.target, grep.counts], ["box", host.counts]);
});

Deno.test("scanner records: merging shards keeps every port once, in order", () => {
  const a = { ...host, outcomes: outcomesOf(ports.slice(0, 2)) };
  const b = { ...host, outcomes: outcomesOf(ports.slice(2)) };
  const [merged] = mergeHosts([[b], [a]], services);
  assertEquals(merged.ports, ports);
  assertEquals(merged.counts, { open: 1, closed: 3, filtered: 1 });
  assertEquals(
    decodeCodes(encodeCodes(new Uint8Array([1, 2, 9, 5]))),
    new Uint8Array([1, 2, 9, 5]),
  );
});

Deno.test("scanner records: banners survive a written document, --jsonl, resume and merge", () => {
  const read: PortResult[] = ports.map((port) =>
    port.port === 22 ? { ...port, banner: "SSH-2.0-x" } : { ...port }
  );
  read.push({ port: 8080, state: "open", reason: "syn-ack", service: null, banner: null });
  const counts = countStates(read);
  assertEquals(bannersOf(read), { banners: { "22": "SSH-2.0-x", "8080": null } });
  assertEquals(bannersOf(ports), {});
  // As -oJ/--json write a host, then read back by --resume and `scanner merge`.
  const written = { ...host, ports: read, counts, outcomes: outcomesOf(read), ...bannersOf(read) };
  const [merged] = mergeHosts([[written]], services);
  assertEquals(merged.ports, read);
  // Two shards, each with its banner.
  const a = { ...written, outcomes: outcomesOf(read.slice(0, 2)), ...bannersOf(read.slice(0, 2)) };
  const b = { ...written, outcomes: outcomesOf(read.slice(2)), ...bannersOf(read.slice(2)) };
  assertEquals(mergeHosts([[b], [a]], services)[0].ports, read);
  // A --jsonl stream's summary carries them too.
  const [back] = parseJsonl(jsonlSummary([{ ...host, ports: read, counts }], {}));
  assertEquals(back.banners, { "22": "SSH-2.0-x", "8080": null });
  assertEquals(mergeHosts([[back]], services)[0].ports, read);
});
