/**
 * Reads one STEP reply from a buffered socket, tolerating the course server's
 * JSON length counted in characters (its replies with non-ASCII text announce
 * too few bytes). Used against servers that are not this project's; ours are
 * read as exact frames (receiver.ts).
 *
 * @module
 */
import { decodeStepHeader, STEP_HEADER_SIZE } from "../shared/codec.ts";
import { ProtocolError } from "../shared/errors.ts";
import type { BufferedReader, ReadOptions } from "../shared/reader.ts";
import { MAX_BLOCK_SIZE, MAX_REPLY_JSON, type Reply, type StepJson } from "./protocol.ts";

const strictDecoder = new TextDecoder("utf-8", { fatal: true });

function tryParseObject(bytes: Uint8Array): StepJson | undefined {
  try {
    const value = JSON.parse(strictDecoder.decode(bytes));
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
  } catch {
    // Not (yet) a whole object.
  }
  return undefined;
}

/**
 * Reads one reply, tolerating the course server's JSON length counted in
 * characters: when the announced bytes do not parse, it reads on, byte by byte,
 * up to 3·N more, until the object parses. Returns `null` on EOF between packets.
 */
export async function readStepReply(
  reader: BufferedReader,
  options: ReadOptions = {},
  maxBinary = MAX_BLOCK_SIZE + 65536,
): Promise<Reply | null> {
  const header = await reader.readExactOrEof(STEP_HEADER_SIZE, {
    what: "reply header",
    ...options,
  });
  if (header === null) return null;
  const { jsonLength, binaryLength } = decodeStepHeader(header, {
    maxJson: MAX_REPLY_JSON,
    maxBinary,
  });
  let jsonBytes = await reader.readExact(jsonLength, { what: "reply JSON", ...options });
  let json = tryParseObject(jsonBytes);
  const limit = jsonLength * 4 + 16;
  while (json === undefined && jsonBytes.length < limit) {
    const more = await reader.readExact(1, { what: "reply JSON", ...options });
    const grown = new Uint8Array(jsonBytes.length + 1);
    grown.set(jsonBytes);
    grown[jsonBytes.length] = more[0];
    jsonBytes = grown;
    // Only try at a plausible end of the object.
    if (more[0] === 0x7d) json = tryParseObject(jsonBytes);
  }
  if (json === undefined) throw new ProtocolError("reply JSON part is not a JSON object");
  const binary = await reader.readExact(binaryLength, { what: "reply binary part", ...options });
  return { json, binary };
}
