/**
 * STEP v1.0 vocabulary shared by the `transfer` server and client: field names,
 * status codes, limits, the course's token format, response layout and packet
 * encoding. Everything here is pure wire code (no sockets, no files); reading a
 * reply from a socket is reply_reader.ts.
 *
 * @module
 */
import { encodeStepParts } from "../shared/codec.ts";
import { md5Hex } from "./md5.ts";

/** The course's default port. */
export const DEFAULT_PORT = 1379;
/** The course's fixed block size (MAX_PACKET_SIZE); still our default. */
export const DEFAULT_BLOCK_SIZE = 20480;
/** Smallest block size a client may choose (extension). */
export const MIN_BLOCK_SIZE = 1024;
/** Largest block size a client may choose (extension); also caps every binary part. */
export const MAX_BLOCK_SIZE = 8 << 20;
/** The course's public token secret: anyone who knows it can forge tokens. */
export const COURSE_SECRET = "kjh20)*(1";
/** Largest JSON part the server accepts, in bytes. */
export const MAX_REQUEST_JSON = 1 << 20;
/** Largest JSON part the client accepts (STATUS replies list missing blocks). */
export const MAX_REPLY_JSON = 64 << 20;
/** Longest key or username accepted, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024;
/** Largest file size a SAVE may announce by default (1 TiB). */
export const DEFAULT_MAX_FILE_SIZE = 2 ** 40;
/** Most blocks one upload plan may have (a 16 MiB block map; 343 GB at 20480-byte blocks). */
export const MAX_PLAN_BLOCKS = 1 << 24;

/**
 * What this project's server announces in its LOGIN reply (`capabilities`): course
 * clients ignore the field; ours then use large blocks, a window of pipelined
 * requests and several connections, and fall back to the course's lockstep with
 * 20480-byte blocks when it is absent.
 */
export const SERVER_CAPABILITIES = [
  "block_size",
  "pipeline",
  "streams",
  "status_ranges",
  "list",
] as const;

/** The request types of STEP v1.0. */
export const TYPES = ["FILE", "DATA", "AUTH"] as const;
/** The operations of STEP v1.0 plus the `STATUS` and `LIST` extensions. */
export const OPERATIONS = [
  "SAVE",
  "DELETE",
  "GET",
  "UPLOAD",
  "DOWNLOAD",
  "BYE",
  "LOGIN",
  "STATUS",
  "LIST",
] as const;

/** Most keys one LIST reply carries. */
export const MAX_LIST_FILES = 10_000;

/** A STEP JSON object. */
export type StepJson = Record<string, unknown>;

const encoder = new TextEncoder();

/** Lowercase hex MD5 of text (UTF-8) or bytes (libcrypto when FFI is permitted, else node:crypto). */
export { md5Hex };

/** Number of blocks for a size: ceil(size / blockSize). */
export function totalBlocks(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

/** Byte length of block `index` of a file of `size` bytes. */
export function blockLength(size: number, blockSize: number, index: number): number {
  return Math.max(0, Math.min(blockSize, size - index * blockSize));
}

/**
 * A STEP response, with the payload keys first and the five standard fields after
 * them, in the course server's order.
 */
export function response(
  operation: string,
  status: number,
  type: string,
  statusMsg: string,
  payload: StepJson = {},
): StepJson {
  return {
    ...payload,
    operation,
    direction: "RESPONSE",
    status,
    status_msg: statusMsg,
    type,
  };
}

/** A STEP request with the three compulsory fields. */
export function request(type: string, operation: string, fields: StepJson = {}): StepJson {
  return { type, operation, direction: "REQUEST", ...fields };
}

/** Encodes a STEP packet; lengths in bytes (the course server counted characters). */
export function encodePacket(json: StepJson, binary?: Uint8Array): Uint8Array {
  return encodeStepParts(encoder.encode(JSON.stringify(json)), binary ?? new Uint8Array(0));
}

/** Token options. */
export interface TokenOptions {
  /** Secret for the MAC (default: the course's public one). */
  secret?: string;
  /** Lifetime in seconds; 0 or absent: the course's format, which never expires. */
  ttlSeconds?: number;
  /** Current time in epoch milliseconds (for tests). */
  nowMs?: number;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** The course's timestamp: local time as `YYYYmmddHHMMSS`. */
export function courseTimestamp(date: Date): string {
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}` +
    `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`;
}

/** Storage user of a username: the course replaces `.` with `_`. */
export function tokenUser(username: string): string {
  return username.replaceAll(".", "_");
}

function base64(text: string): string {
  const bytes = encoder.encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * Makes a login token in the course's 4-part format: base64 of
 * `user.YYYYmmddHHMMSS.login.md5(first three parts + secret)`. With a TTL the
 * middle parts become the issue and expiry epoch seconds, still four parts.
 */
export function makeToken(username: string, options: TokenOptions = {}): {
  token: string;
  expiresAt: number | null;
} {
  const secret = options.secret ?? COURSE_SECRET;
  const nowMs = options.nowMs ?? Date.now();
  const user = tokenUser(username);
  let plain: string;
  let expiresAt: number | null = null;
  if (options.ttlSeconds && options.ttlSeconds > 0) {
    const issued = Math.floor(nowMs / 1000);
    expiresAt = issued + options.ttlSeconds;
    plain = `${user}.${issued}.${expiresAt}`;
  } else {
    plain = `${user}.${courseTimestamp(new Date(nowMs))}.login`;
  }
  return { token: base64(`${plain}.${md5Hex(plain + secret)}`), expiresAt };
}

/** Result of checking a token: the storage user, or the 403 message. */
export type TokenCheck = { ok: true; user: string } | { ok: false; message: string };

/** Checks a token as the course server does, plus expiry when a TTL is configured. */
export function verifyToken(token: unknown, options: TokenOptions = {}): TokenCheck {
  if (token === undefined || token === null) return { ok: false, message: "No token." };
  if (typeof token !== "string" || token.length > 4 * MAX_NAME_BYTES) {
    return { ok: false, message: "Token format is wrong." };
  }
  let plain: string;
  try {
    const binary = atob(token);
    plain = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(binary, (c) => c.charCodeAt(0)),
    );
  } catch {
    return { ok: false, message: "Token format is wrong." };
  }
  const parts = plain.split(".");
  if (parts.length !== 4) return { ok: false, message: "Token format is wrong." };
  const secret = options.secret ?? COURSE_SECRET;
  const mac = md5Hex(parts.slice(0, 3).join(".") + secret);
  if (mac !== parts[3].toLowerCase()) return { ok: false, message: "Token is wrong." };
  if (options.ttlSeconds && options.ttlSeconds > 0) {
    const expiry = Number(parts[2]);
    if (!/^\d+$/.test(parts[2]) || !/^\d+$/.test(parts[1])) {
      return { ok: false, message: "Token format is wrong: it has no expiry." };
    }
    if ((options.nowMs ?? Date.now()) / 1000 > expiry) {
      return { ok: false, message: "Token has expired; log in again." };
    }
  }
  return { ok: true, user: parts[0] };
}

/** A packet read from a server: the JSON object and the binary part. */
export interface Reply {
  json: StepJson;
  binary: Uint8Array;
}

/** Parses a size such as `20480`, `64KiB`, `1MB`, `1GB`, `1GiB` into bytes. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$/i.exec(text);
  if (!match) throw new RangeError(`'${text}' is not a size (e.g. 20480, 64KiB, 10MB, 1GiB)`);
  const unit = match[2].toLowerCase();
  const base = match[3] ? 1024 : 1000;
  const power = unit === "" ? 0 : "kmgt".indexOf(unit) + 1;
  const value = Number(match[1]) * base ** power;
  if (!Number.isSafeInteger(Math.round(value))) throw new RangeError(`'${text}' is too large`);
  return Math.round(value);
}

/** Formats a byte count with decimal units (1 MB = 10^6 B), as sizes are written in the issue. */
export function formatSize(bytes: number): string {
  for (const [unit, scale] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3]] as const) {
    if (bytes >= scale) return `${Number((bytes / scale).toFixed(2))} ${unit}`;
  }
  return `${bytes} B`;
}
