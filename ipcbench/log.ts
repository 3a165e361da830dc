/**
 * `--log FILE`: every timed round trip as one CSV line
 * (`transport,pin,size,run,index,us`), written to a temporary name beside FILE
 * and renamed to FILE when the bench finished, so a failed run leaves no half log.
 *
 * @module
 */

/** Formats one run's round trips as CSV lines. */
export function logLines(
  item: { transport: string; pin: string; size: number },
  run: number,
  samples: Float64Array,
): string {
  const prefix = `${item.transport},${item.pin},${item.size},${run + 1},`;
  let text = "";
  for (let i = 0; i < samples.length; i++) {
    text += `${prefix}${i + 1},${Math.round(samples[i] * 1000) / 1000}\n`;
  }
  return text;
}

/** The round-trip log being written. */
export class RoundTripLog {
  #file: Deno.FsFile | null;
  #done = false;
  private constructor(readonly path: string, readonly temp: string, file: Deno.FsFile) {
    this.#file = file;
  }

  /** Creates the temporary file and writes the header. */
  static async open(path: string): Promise<RoundTripLog> {
    const temp = `${path}.partial-${Deno.pid}`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(temp, { write: true, create: true, truncate: true });
    } catch (error) {
      throw new Error(
        `Cannot write the round-trip log ${path}: ${
          error instanceof Error ? error.message : error
        } (choose a writable path)`,
      );
    }
    const log = new RoundTripLog(path, temp, file);
    log.#writeText("transport,pin,size,run,index,us\n");
    return log;
  }

  #writeText(text: string): void {
    const bytes = new TextEncoder().encode(text);
    let offset = 0;
    while (offset < bytes.length) offset += this.#file!.writeSync(bytes.subarray(offset));
  }

  /** Appends one run. */
  write(
    item: { transport: string; pin: string; size: number },
    run: number,
    samples: Float64Array,
  ) {
    if (this.#file) this.#writeText(logLines(item, run, samples));
  }

  /** Closes the file and gives it its name. */
  async commit(): Promise<void> {
    this.#file?.close();
    this.#file = null;
    await Deno.rename(this.temp, this.path);
    this.#done = true;
  }

  /** After a failure: closes and removes the temporary file. */
  discard(): void {
    if (this.#done) return;
    try {
      this.#file?.close();
    } catch {
      // Already closed.
    }
    this.#file = null;
    try {
      Deno.removeSync(this.temp);
    } catch {
      // Not there.
    }
  }
}
