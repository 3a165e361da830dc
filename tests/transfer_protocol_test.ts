import { readStepReply } from "../transfer/reply_reader.ts";
import { assertEquals, assertOk, assertThrows } from "./_assert.ts";
import {
  blockLength,
  COURSE_SECRET,
  encodePacket,
  makeToken,
  md5Hex,
  parseSize,
  response,
  totalBlocks,
  verifyToken,
} from "../transfer/protocol.ts";
import { safeName } from "../transfer/storage.ts";
import { defaultOutput, splitShares } from "../transfer/client.ts";
import { normalizeArgs } from "../transfer/cli.ts";
import { BufferedReader } from "../shared/reader.ts";

function readerOf(bytes: Uint8Array, chunk = 3): BufferedReader {
  let offset = 0;
  return new BufferedReader({
    read(p: Uint8Array): Promise<number | null> {
      if (offset >= bytes.length) return Promise.resolve(null);
      const n = Math.min(chunk, p.length, bytes.length - offset);
      p.set(bytes.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  });
}

Deno.test("transfer protocol: course token format, verified with the public secret", () => {
  const nowMs = new Date(2026, 10, 22, 3, 29, 21).getTime();
  const { token, expiresAt } = makeToken("a.lice", { nowMs });
  assertEquals(expiresAt, null);
  const plain = new TextDecoder().decode(Uint8Array.from(atob(token), (c) => c.charCodeAt(0)));
  const mac = md5Hex(`a_lice.20261122032921.login${COURSE_SECRET}`);
  assertEquals(plain, `a_lice.20261122032921.login.${mac}`);
  assertEquals(verifyToken(token), { ok: true, user: "a_lice" });
  assertEquals(verifyToken(undefined), { ok: false, message: "No token." });
  assertEquals(verifyToken("%%%"), { ok: false, message: "Token format is wrong." });
  assertEquals(verifyToken(btoa("a.b.c")), { ok: false, message: "Token format is wrong." });
  assertEquals(verifyToken(btoa("a.b.c.0123")), { ok: false, message: "Token is wrong." });
  assertEquals(verifyToken(token, { secret: "other" }), { ok: false, message: "Token is wrong." });
});

Deno.test("transfer protocol: a TTL token keeps 4 parts and expires", () => {
  const nowMs = 1_700_000_000_000;
  const { token, expiresAt } = makeToken("bob", { ttlSeconds: 60, nowMs, secret: "s" });
  assertEquals(expiresAt, 1_700_000_060);
  const plain = atob(token);
  assertEquals(plain.split(".").length, 4);
  assertEquals(verifyToken(token, { ttlSeconds: 60, secret: "s", nowMs: nowMs + 59_000 }), {
    ok: true,
    user: "bob",
  });
  assertEquals(verifyToken(token, { ttlSeconds: 60, secret: "s", nowMs: nowMs + 61_000 }), {
    ok: false,
    message: "Token has expired; log in again.",
  });
  // A course-format token never expires, so a server with a TTL refuses it.
  const course = makeToken("bob", { secret: "s" }).token;
  assertEquals(verifyToken(course, { ttlSeconds: 60, secret: "s" }).ok, false);
});

Deno.test("transfer protocol: responses put the payload first, then the five fields", () => {
  assertEquals(Object.keys(response("SAVE", 200, "FILE", "ok", { key: "k", size: 1 })), [
    "key",
    "size",
    "operation",
    "direction",
    "status",
    "status_msg",
    "type",
  ]);
});

Deno.test("transfer protocol: blocks, sizes and shares", () => {
  assertEquals(totalBlocks(0, 20480), 0);
  assertEquals(totalBlocks(20481, 20480), 2);
  assertEquals(blockLength(20481, 20480, 1), 1);
  assertEquals(parseSize("10MB"), 10_000_000);
  assertEquals(parseSize("1GiB"), 1 << 30);
  assertEquals(parseSize("20480"), 20480);
  assertThrows(() => parseSize("ten"), RangeError, "not a size");
  assertEquals(splitShares([0, 1, 2, 3, 4], 2), [[0, 1], [2, 3, 4]]);
  assertEquals(splitShares([7], 4), [[7]]);
  assertEquals(splitShares([], 4), []);
  assertEquals(["a/b.txt", "..", "x/", "/"].map(defaultOutput), [
    "b.txt",
    "download",
    "x",
    "download",
  ]);
});

Deno.test("transfer protocol: names from the network never become paths", () => {
  for (const name of ["../../etc/passwd", "/abs/path", "..", ".", "a/b", "x\u0000y"]) {
    const safe = safeName(name);
    assertOk(/^[0-9a-f]{16}-[A-Za-z0-9_.-]*$/.test(safe), safe);
    assertOk(!safe.includes("/"), safe);
  }
  assertOk(safeName("a.b") !== safeName("a_b"));
});

Deno.test("transfer protocol: the reply reader tolerates JSON lengths counted in characters", async () => {
  const json = { key: "ключ", status: 200 };
  const text = JSON.stringify(json);
  const good = encodePacket(json, new Uint8Array([1, 2, 3]));
  // The course server's bug: the header holds the character count, not the byte count.
  const bad = good.slice();
  new DataView(bad.buffer).setUint32(0, text.length);
  for (const bytes of [good, bad]) {
    const reader = readerOf(new Uint8Array([...bytes, ...encodePacket({ next: true })]));
    const first = await readStepReply(reader);
    assertEquals(first?.json, json);
    assertEquals([...first!.binary], [1, 2, 3]);
    assertEquals((await readStepReply(reader))?.json, { next: true });
    assertEquals(await readStepReply(reader), null);
  }
});

Deno.test("transfer cli: the study's spellings map to ours", () => {
  assertEquals(normalizeArgs(["--server_ip", "1.2.3.4", "-id", "7", "--f", "x.jpg"]), [
    "upload",
    "--server",
    "1.2.3.4",
    "--id",
    "7",
    "--file",
    "x.jpg",
  ]);
  assertEquals(normalizeArgs(["download", "k", "-server_ip=h"]), ["download", "k", "--server=h"]);
});
