// The shared-memory endpoint's packet fast path against its byte-stream path,
// in one process: both ends of one region, doorbells over a Unix socket pair.
import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { ShmRegion, shmUnavailable } from "../shared/child_channel_shm.ts";
import { ShmEndpoint, shmPort } from "../shared/child_channel_shm_endpoint.ts";
import { FrameTooLargeError, ProtocolError } from "../shared/errors.ts";
import { encodeStepParts } from "../shared/codec.ts";
import type { PacketPort } from "../shared/child_channel_port.ts";

const LIMITS = { maxJson: 1 << 20, maxBinary: 8 << 20 };

async function pair(): Promise<
  { a: PacketPort; b: PacketPort; parent: ShmEndpoint; close(): Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "netconc-shm-test-" });
  const listener = Deno.listen({ transport: "unix", path: `${dir}/bell` });
  const connecting = Deno.connect({ transport: "unix", path: `${dir}/bell` });
  const accepted = await listener.accept();
  const connected = await connecting;
  listener.close();
  const region = ShmRegion.create();
  const other = ShmRegion.open(Deno.pid, region.fd);
  const parent = new ShmEndpoint(region, "parent", accepted);
  const child = new ShmEndpoint(other, "child", connected);
  return {
    a: shmPort(parent, LIMITS, () => parent.closeWrite()),
    b: shmPort(child, LIMITS, () => child.closeWrite()),
    parent,
    async close() {
      parent.dispose();
      child.dispose();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const skip = shmUnavailable() !== null;

/** A test over a fresh pair of endpoints, closed afterwards. */
function shmTest(name: string, body: (ends: Awaited<ReturnType<typeof pair>>) => Promise<void>) {
  Deno.test({
    name: `shm endpoint: ${name}`,
    ignore: skip,
    async fn() {
      const ends = await pair();
      try {
        await body(ends);
      } finally {
        await ends.close();
      }
    },
  });
}

shmTest("packets of every size arrive in order, whole or in pieces", async ({ a, b }) => {
  // 5 MiB of small packets wrap the 1 MiB ring several times; the 3 MiB one
  // cannot fit at once and goes through the byte stream both ways.
  const sizes = Array.from({ length: 3000 }, (_, i) => (i * 977) % 3500);
  sizes.splice(1500, 0, 3 << 20);
  const reader = (async () => {
    const seen: number[] = [];
    for (;;) {
      const packet = await b.read();
      if (packet === null) return seen;
      const n = packet.json.n as number;
      assertEquals(packet.json.s, "ü€" + n);
      assertEquals(packet.binary.length, sizes[n]);
      assertOk(packet.binary.every((v, i) => v === ((i + n) & 255)), `packet ${n} differs`);
      seen.push(n);
    }
  })();
  for (let n = 0; n < sizes.length; n++) {
    const bytes = new Uint8Array(sizes[n]).map((_, i) => (i + n) & 255);
    a.send({ n, s: "ü€" + n }, bytes);
    if (n % 100 === 0) await a.flush();
  }
  a.closeWrite();
  await a.flush();
  assertEquals(await reader, sizes.map((_, n) => n));
});

shmTest("a part over the limit fails the read, as the stream reader does", async ({ a, b }) => {
  a.send({ t: "m" }, new Uint8Array(10));
  a.send({ t: "m" }, new Uint8Array((8 << 20) + 1));
  assertEquals((await b.read())?.binary.length, 10);
  await assertRejects(() => b.read(), FrameTooLargeError);
  assertEquals(await b.read(), null);
});

shmTest("a JSON part that is not an object fails as parseStepJson says", async ({ parent, b }) => {
  parent.write(encodeStepParts(new TextEncoder().encode('{"ok":"é"}'), new Uint8Array(0)));
  parent.write(encodeStepParts(new TextEncoder().encode("[1]"), new Uint8Array(0)));
  assertEquals((await b.read())?.json, { ok: "é" });
  const error = await assertRejects(() => b.read(), ProtocolError);
  assertEquals(error.message, "JSON part must be an object, got an array");
});

shmTest(
  "a small packet split by the ring's end at every offset arrives whole",
  async ({ a, b }) => {
    // A filler packet moves the ring's position to k bytes before its end, so the
    // next small packet is split there: in its header, its JSON or its binary part.
    const RING = 1 << 20;
    const HEADER = 8;
    const fillerJson = new TextEncoder().encode(JSON.stringify({ f: 1 })).length;
    let position = 0;
    for (let k = 1; k <= 90; k++) {
      const fillerBinary = (((RING - k - position - HEADER - fillerJson) % RING) + RING) % RING;
      a.send({ f: 1 }, new Uint8Array(fillerBinary));
      // Read first, so the small packet finds the ring empty and goes in whole.
      assertEquals((await b.read())?.binary.length, fillerBinary, `filler before offset ${k}`);
      // ASCII JSON (read in place), every third one not ASCII (copied out first),
      // every fifth one longer than the ASCII shortcut (parsed from one or two pieces).
      const json = k % 5 === 0
        ? { k, s: "y".repeat(600) }
        : k % 3 === 0
        ? { k, s: "é" }
        : { k, s: "x" };
      const binary = new Uint8Array((k * 7) % 65).map((_, i) => (i + k) & 255);
      a.send(json, binary);
      const jsonBytes = new TextEncoder().encode(JSON.stringify(json)).length;
      position = (RING - k + HEADER + jsonBytes + binary.length) % RING;
      const packet = await b.read();
      assertEquals(packet?.json, json, `packet split ${k} bytes before the end`);
      assertEquals(packet?.binary, binary, `packet split ${k} bytes before the end`);
    }
  },
);
