import { assertEquals, assertRejects } from "./_assert.ts";
import { BufferedReader, type ByteSource } from "../shared/reader.ts";
import {
  concatAll,
  decodeText,
  encodeFrame,
  encodeStepPacket,
  LineOverflow,
} from "../shared/codec.ts";
import {
  FrameTooLargeError,
  ProtocolError,
  TimeoutError,
  UnexpectedEofError,
} from "../shared/errors.ts";

const bytesOf = (text: string) => new TextEncoder().encode(text);

/** A source that hands out the given chunks, one per read, then EOF. */
function chunks(...parts: Uint8Array[]): ByteSource {
  const queue = parts.map((p) => p.slice());
  return {
    read(p: Uint8Array): Promise<number | null> {
      const next = queue[0];
      if (next === undefined) return Promise.resolve(null);
      const n = Math.min(p.length, next.length);
      p.set(next.subarray(0, n));
      if (n === next.length) queue.shift();
      else queue[0] = next.subarray(n);
      return Promise.resolve(n);
    },
  };
}

Deno.test("reader: frames and STEP packets across every split point", async () => {
  const wire = concatAll([
    encodeFrame(bytesOf("first")),
    encodeStepPacket({ operation: "LOGIN", username: "zoë" }, Uint8Array.of(9, 8, 7)),
    encodeFrame(new Uint8Array(0)),
  ]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const reader = new BufferedReader(chunks(wire.subarray(0, cut), wire.subarray(cut)), 8);
    assertEquals(decodeText((await reader.readFrame(64))!), "first");
    const packet = (await reader.readStepPacket())!;
    assertEquals(packet.json, { operation: "LOGIN", username: "zoë" });
    assertEquals([...packet.binary], [9, 8, 7]);
    assertEquals((await reader.readFrame(64))!.length, 0);
    assertEquals(await reader.readFrame(64), null);
  }
});

Deno.test("reader: works over a ReadableStream", async () => {
  const wire = encodeFrame(bytesOf("streamed"));
  const stream = ReadableStream.from([wire.subarray(0, 2), wire.subarray(2, 7), wire.subarray(7)]);
  const reader = new BufferedReader(stream);
  assertEquals(decodeText((await reader.readFrame(64))!), "streamed");
  assertEquals(await reader.readFrame(64), null);
});

Deno.test("reader: EOF mid-frame is its own error; clean EOF is null", async () => {
  const wire = encodeFrame(bytesOf("abcdef"));
  const reader = new BufferedReader(chunks(wire.subarray(0, 7)));
  const error = await assertRejects(() => reader.readFrame(64), UnexpectedEofError);
  assertEquals(error.missing, 3);
  assertEquals(await new BufferedReader(chunks()).readFrame(64), null);
});

Deno.test("reader: oversize frame and bad STEP JSON are rejected", async () => {
  await assertRejects(
    () => new BufferedReader(chunks(Uint8Array.of(0, 1, 0, 0))).readFrame(1024),
    FrameTooLargeError,
  );
  const bad = new Uint8Array(8 + 2);
  new DataView(bad.buffer).setUint32(0, 2);
  bad.set([0x5b, 0x5d], 8); // "[]"
  await assertRejects(
    () => new BufferedReader(chunks(bad)).readStepPacket(),
    ProtocolError,
    "an array",
  );
});

Deno.test("reader: lines with overflow, CRLF and an unterminated tail", async () => {
  const reader = new BufferedReader(
    chunks(bytesOf("ab\r\nxxxx"), bytesOf("xxxxxx\nok\nta"), bytesOf("il")),
    4,
  );
  assertEquals(decodeText((await reader.readLine(5)) as Uint8Array), "ab");
  const overflow = await reader.readLine(5);
  assertEquals(overflow instanceof LineOverflow, true);
  assertEquals((overflow as LineOverflow).length, 10);
  assertEquals(decodeText((await reader.readLine(5)) as Uint8Array), "ok");
  assertEquals(decodeText((await reader.readLine(5)) as Uint8Array), "tail");
  assertEquals(await reader.readLine(5), null);
});

Deno.test("reader: a timeout keeps the pending read, so no byte is lost", async () => {
  let deliver: ((n: number) => void) | undefined;
  let target: Uint8Array | undefined;
  let served = false;
  const source: ByteSource = {
    read(p) {
      if (served) return Promise.resolve(null);
      target = p;
      return new Promise((resolve) => (deliver = resolve));
    },
  };
  const reader = new BufferedReader(source);
  await assertRejects(
    () => reader.readExact(3, { timeout: 20, what: "reply" }),
    TimeoutError,
    "reply",
  );
  target!.set(bytesOf("xyz"));
  served = true;
  deliver!(3);
  assertEquals(decodeText(await reader.readExact(3)), "xyz");
});

Deno.test("UnexpectedEofError: says what was cut, with one article", () => {
  assertEquals(
    new UnexpectedEofError(8, "the rest of a request").message,
    "Connection closed in the middle of the rest of a request (8 more bytes expected)",
  );
  assertEquals(
    new UnexpectedEofError(3).message,
    "Connection closed in the middle of a frame (3 more bytes expected)",
  );
});
