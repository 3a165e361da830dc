import { assertEquals, assertThrows } from "./_assert.ts";
import {
  decodeFrame,
  decodeStepPacket,
  encodeFrame,
  encodeStepPacket,
  FrameDecoder,
  LineDecoder,
  LineOverflow,
} from "../shared/codec.ts";
import { FrameTooLargeError, ProtocolError } from "../shared/errors.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function splitAt(bytes: Uint8Array, cut: number): Uint8Array[] {
  return [bytes.subarray(0, cut), bytes.subarray(cut)];
}

Deno.test("frame: round trip at every split point", () => {
  const frames = [enc.encode("hello"), new Uint8Array(0), enc.encode("wörld ✓")];
  const wire = new Uint8Array(frames.reduce((n, f) => n + 4 + f.length, 0));
  let offset = 0;
  for (const f of frames) {
    wire.set(encodeFrame(f), offset);
    offset += 4 + f.length;
  }
  for (let cut = 0; cut <= wire.length; cut++) {
    const decoder = new FrameDecoder(1024);
    const out = splitAt(wire, cut).flatMap((chunk) => decoder.push(chunk));
    assertEquals(out.map((f) => dec.decode(f)), ["hello", "", "wörld ✓"], `cut at ${cut}`);
    assertEquals(decoder.pending, 0);
  }
});

Deno.test("frame: byte-at-a-time feeding", () => {
  const wire = encodeFrame(enc.encode("abc"));
  const decoder = new FrameDecoder(16);
  const out: Uint8Array[] = [];
  for (const byte of wire) out.push(...decoder.push(Uint8Array.of(byte)));
  assertEquals(out.map((f) => dec.decode(f)), ["abc"]);
});

Deno.test("frame: oversize length rejected from the header alone", () => {
  const header = Uint8Array.of(0xff, 0xff, 0xff, 0xff);
  const error = assertThrows(() => decodeFrame(header, 1 << 20), FrameTooLargeError);
  assertEquals(error.length, 0xffffffff);
  assertEquals(error.max, 1 << 20);
});

Deno.test("frame: truncated input waits for more", () => {
  const wire = encodeFrame(enc.encode("abcdef"));
  assertEquals(decodeFrame(wire.subarray(0, 3), 100), undefined);
  assertEquals(decodeFrame(wire.subarray(0, 9), 100), undefined);
  assertEquals(decodeFrame(wire, 100)?.size, 10);
});

Deno.test("step: lengths counted in bytes, non-ASCII round trips at every split", () => {
  const json = { type: "DATA", operation: "SAVE", key: "ключ-🔑" };
  const binary = Uint8Array.of(0, 1, 2, 255);
  const wire = encodeStepPacket(json, binary);
  const jsonBytes = enc.encode(JSON.stringify(json)).length;
  const view = new DataView(wire.buffer);
  assertEquals(view.getUint32(0), jsonBytes);
  assertEquals(view.getUint32(4), 4);
  assertEquals(wire.length, 8 + jsonBytes + 4);
  for (let cut = 0; cut <= wire.length; cut++) {
    const head = wire.subarray(0, cut);
    const partial = decodeStepPacket(head);
    if (cut < wire.length) assertEquals(partial, undefined, `cut ${cut}`);
  }
  const full = decodeStepPacket(wire)!;
  assertEquals(full.size, wire.length);
  assertEquals(full.value.json, json);
  assertEquals([...full.value.binary], [0, 1, 2, 255]);
});

Deno.test("step: oversize JSON and binary lengths rejected before allocation", () => {
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, 0xffffffff);
  assertThrows(
    () => decodeStepPacket(header, { maxJson: 1024, maxBinary: 1024 }),
    FrameTooLargeError,
  );
  new DataView(header.buffer).setUint32(0, 2);
  new DataView(header.buffer).setUint32(4, 2048);
  const error = assertThrows(
    () => decodeStepPacket(header, { maxJson: 1024, maxBinary: 1024 }),
    FrameTooLargeError,
  );
  assertEquals(error.length, 2048);
});

function rawStep(jsonBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + jsonBytes.length);
  new DataView(out.buffer).setUint32(0, jsonBytes.length);
  out.set(jsonBytes, 8);
  return out;
}

Deno.test("step: invalid UTF-8, invalid JSON, arrays and scalars are protocol errors", () => {
  const cases: [Uint8Array, string][] = [
    [Uint8Array.of(0x7b, 0xff, 0x7d), "JSON part is not valid UTF-8"],
    [enc.encode("{nope"), "JSON part is not valid JSON"],
    [new Uint8Array(0), "JSON part is not valid JSON"],
    [enc.encode("[1,2]"), "JSON part must be an object, got an array"],
    [enc.encode('"text"'), "JSON part must be an object, got string"],
    [enc.encode("null"), "JSON part must be an object, got object"],
  ];
  for (const [bytes, message] of cases) {
    const error = assertThrows(() => decodeStepPacket(rawStep(bytes)), ProtocolError);
    assertEquals(error.message, message);
  }
});

Deno.test("lines: every split point, CRLF, empty lines, unterminated tail", () => {
  const wire = enc.encode("one\r\n\ntwo ✓\nthree");
  for (let cut = 0; cut <= wire.length; cut++) {
    const decoder = new LineDecoder(100);
    const out = splitAt(wire, cut).flatMap((chunk) => decoder.push(chunk));
    const tail = decoder.flush();
    assertEquals(
      [...out, tail].map((l) => (l instanceof Uint8Array ? dec.decode(l) : l)),
      ["one", "", "two ✓", "three"],
      `cut ${cut}`,
    );
  }
});

Deno.test("lines: an oversize line becomes one overflow and the stream stays in sync", () => {
  const decoder = new LineDecoder(5);
  const out = [
    ...decoder.push(enc.encode("abc\n0123456")),
    ...decoder.push(enc.encode("789\nok\n")),
  ];
  assertEquals(out.length, 3);
  assertEquals(dec.decode(out[0] as Uint8Array), "abc");
  assertEquals(out[1] instanceof LineOverflow, true);
  assertEquals((out[1] as LineOverflow).length, 10);
  assertEquals(dec.decode(out[2] as Uint8Array), "ok");
  assertEquals(decoder.flush(), undefined);
});

Deno.test("lines: exactly max bytes is accepted, max + 1 is not", () => {
  const decoder = new LineDecoder(3);
  const out = decoder.push(enc.encode("abc\nabcd\nabc\r\n"));
  assertEquals(out.map((l) => (l instanceof Uint8Array ? dec.decode(l) : "overflow")), [
    "abc",
    "overflow",
    "abc",
  ]);
});
