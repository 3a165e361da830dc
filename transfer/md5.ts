/**
 * MD5 for whole files, the hot path of every transfer (the client and the server
 * each hash every byte once). OpenSSL's `MD5_Update` through FFI when this
 * process may use FFI and libcrypto loads: it took about 20% less CPU than
 * `node:crypto` for 1 GiB here (1.6–1.7 s against 1.95–2.2 s user time, the
 * same as `md5sum`). Otherwise `node:crypto`. Both give the same digest;
 * {@linkcode md5Engine} says which one runs.
 *
 * `node:crypto` is loaded on first use ({@linkcode nodeCrypto}), not imported:
 * a static import made every start load Node compatibility (about 40 ms of a
 * client's start-up here) even when libcrypto does all the hashing.
 *
 * @module
 */

/** An incremental MD5. */
export interface Md5 {
  update(bytes: Uint8Array): void;
  /** Lowercase hex digest; the hash cannot be used afterwards. */
  digest(): string;
}

const SYMBOLS = {
  MD5_Init: { parameters: ["buffer"], result: "i32" },
  MD5_Update: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
  MD5_Final: { parameters: ["buffer", "buffer"], result: "i32" },
} as const;

type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>;

let libcrypto: Libcrypto | null | undefined;

function loadLibcrypto(): Libcrypto | null {
  if (libcrypto !== undefined) return libcrypto;
  libcrypto = null;
  try {
    if (Deno.env.get("TRANSFER_MD5") === "node") return null;
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    for (const name of ["libcrypto.so.3", "libcrypto.so"]) {
      try {
        libcrypto = Deno.dlopen(name, SYMBOLS);
        break;
      } catch {
        // Try the next name.
      }
    }
  } catch {
    libcrypto = null;
  }
  return libcrypto;
}

class LibcryptoMd5 implements Md5 {
  // MD5_CTX is 92 bytes; room to spare.
  readonly #ctx = new Uint8Array(128);
  constructor(readonly lib: Libcrypto) {
    lib.symbols.MD5_Init(this.#ctx);
  }
  update(bytes: Uint8Array): void {
    if (bytes.length > 0) this.lib.symbols.MD5_Update(this.#ctx, bytes, BigInt(bytes.length));
  }
  digest(): string {
    const out = new Uint8Array(16);
    this.lib.symbols.MD5_Final(out, this.#ctx);
    let hex = "";
    for (const byte of out) hex += byte.toString(16).padStart(2, "0");
    return hex;
  }
}

type NodeCrypto = typeof import("node:crypto");

let nodeCryptoModule: NodeCrypto | undefined;

/** `node:crypto`, loaded the first time it is needed (see the module documentation). */
export function nodeCrypto(): NodeCrypto {
  nodeCryptoModule ??= (globalThis as unknown as {
    process: { getBuiltinModule(id: "node:crypto"): NodeCrypto };
  }).process.getBuiltinModule("node:crypto");
  return nodeCryptoModule;
}

const encoder = new TextEncoder();

/** Lowercase hex MD5 of bytes, or of a string's UTF-8 (as `createHash("md5").update`). */
export function md5Hex(data: string | Uint8Array): string {
  const md5 = createMd5();
  md5.update(typeof data === "string" ? encoder.encode(data) : data);
  return md5.digest();
}

/** A new incremental MD5 (libcrypto through FFI when possible). */
export function createMd5(): Md5 {
  const lib = loadLibcrypto();
  if (lib) return new LibcryptoMd5(lib);
  const hash = nodeCrypto().createHash("md5");
  return {
    update: (bytes) => void hash.update(bytes),
    digest: () => hash.digest("hex"),
  };
}

/** True when {@linkcode createMd5} uses libcrypto in this isolate. */
export function libcryptoMd5Available(): boolean {
  return loadLibcrypto() !== null;
}

/** Which implementation {@linkcode createMd5} uses in this isolate. */
export function md5Engine(): "libcrypto (ffi)" | "node:crypto" {
  return loadLibcrypto() ? "libcrypto (ffi)" : "node:crypto";
}
