/**
 * The FFI engine's two queues: a binary min-heap of timers (retries and
 * deadlines) and a double-ended queue of probes waiting for a socket.
 *
 * @module
 */

/** A timer of one job. */
export interface Timer<J> {
  at: number;
  job: J;
  seq: number;
  kind: "retry" | "deadline";
}

/** Binary min-heap of timers by `at`. */
export class TimerHeap<J> {
  #items: Timer<J>[] = [];
  get size(): number {
    return this.#items.length;
  }
  peek(): Timer<J> | undefined {
    return this.#items[0];
  }
  push(timer: Timer<J>): void {
    const items = this.#items;
    items.push(timer);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent].at <= timer.at) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = timer;
  }
  pop(): Timer<J> | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= items.length) break;
        const right = left + 1;
        const child = right < items.length && items[right].at < items[left].at ? right : left;
        if (items[child].at >= last.at) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}

/** Double-ended queue of jobs waiting for a socket (retries first). */
export class JobQueue<J> {
  #items: J[] = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(job: J): void {
    this.#items.push(job);
  }
  unshift(job: J): void {
    if (this.#head > 0) this.#items[--this.#head] = job;
    else this.#items.unshift(job);
  }
  shift(): J | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const job = this.#items[this.#head];
    this.#items[this.#head++] = undefined as unknown as J;
    if (this.#head > 4096 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return job;
  }
}
