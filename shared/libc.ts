/**
 * libc through `Deno.dlopen`, for the FFI fast paths that the tools keep behind
 * a portable fallback: one loader that says why it cannot (platform,
 * architecture, permission, a missing library) instead of throwing.
 *
 * @module
 */

/**
 * Loads libc's `symbols` through `Deno.dlopen` once, on first call: the
 * symbols, or why not (`needs Linux`, `archWhy` when the architecture lacks
 * what the caller needs, `needs --allow-ffi`, `libc could not be loaded (…)`).
 */
export function libcLoader<const S extends Deno.ForeignLibraryInterface>(
  symbols: S,
  archWhy: string | null,
): () => Deno.DynamicLibrary<S>["symbols"] | string {
  let loaded: Deno.DynamicLibrary<S>["symbols"] | string | undefined;
  return () => loaded ??= openLibc(symbols, archWhy);
}

function openLibc<const S extends Deno.ForeignLibraryInterface>(
  symbols: S,
  archWhy: string | null,
): Deno.DynamicLibrary<S>["symbols"] | string {
  if (Deno.build.os !== "linux") return "needs Linux";
  if (archWhy !== null) return archWhy;
  let granted = false;
  try {
    granted = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    granted = false;
  }
  if (!granted) return "needs --allow-ffi";
  try {
    return Deno.dlopen("libc.so.6", symbols).symbols;
  } catch (error) {
    return `libc could not be loaded (${error})`;
  }
}
