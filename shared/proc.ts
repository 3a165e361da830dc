/**
 * Reading another process's `/proc` entries (resident memory, CPU time) for the
 * benchmarks. Deno asks for `--allow-all` before it reads another process's
 * `/proc` files, and the tools run with narrower permissions, so these read
 * through `cat` (needs `--allow-run`) when a direct read is refused.
 *
 * @module
 */

function readDirect(path: string): string | null | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    // Gone (or never there): no value. Refused: try through `cat`.
    return error instanceof Deno.errors.NotFound ? null : undefined;
  }
}

function catSync(script: string, args: string[]): string | null {
  try {
    const out = new Deno.Command("sh", {
      args: ["-c", script, "sh", ...args],
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).outputSync();
    const text = new TextDecoder().decode(out.stdout);
    return text === "" ? null : text;
  } catch {
    return null;
  }
}

/** The text of a `/proc` file (e.g. `/proc/PID/status`), or `null` when it cannot be read. */
export function readProcText(path: string): string | null {
  const direct = readDirect(path);
  if (direct !== undefined) return direct;
  return catSync('cat "$1" 2>/dev/null', [path]);
}

/**
 * The `/proc/PID/stat` lines of `pid` and of its direct children (threads'
 * children included), first line `pid`'s own; `null` when `pid` is gone or
 * `/proc` cannot be read.
 */
export function processTreeStatLines(pid: number): string[] | null {
  const own = readDirect(`/proc/${pid}/stat`);
  if (own !== undefined) {
    if (own === null) return null;
    const lines = [own.trim()];
    try {
      for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
        const children = readDirect(`/proc/${pid}/task/${task.name}/children`) ?? "";
        for (const child of children.trim().split(/\s+/).filter((c) => c !== "")) {
          const stat = readDirect(`/proc/${child}/stat`);
          if (stat) lines.push(stat.trim());
        }
      }
    } catch {
      // Threads came and went; what was read stands.
    }
    return lines;
  }
  const text = catSync(
    'cat "/proc/$1/stat" || exit 0; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); ' +
      'do cat "/proc/$c/stat" 2>/dev/null; done',
    [String(pid)],
  );
  return text === null ? null : text.trim().split("\n").filter((line) => line !== "");
}
