/**
 * The block map of an upload in progress (`<name>.blocks`: one byte per block, 1
 * once the block is written), scanned in 1 MiB pieces: counting the received
 * blocks and listing the missing ones as ranges costs a fixed buffer, never an
 * array per block, however many blocks the plan has.
 *
 * @module
 */

/** A run of missing blocks, `[first, last]` inclusive. */
export type BlockRange = [number, number];

/** What a scan found. */
export interface BlockMapScan {
  /** Blocks marked received. */
  received: number;
  /** Missing blocks as ranges, the first `maxRanges` of them. */
  missing: BlockRange[];
  /** True when there were more than `maxRanges` ranges. */
  truncated: boolean;
}

/** Bytes of the map read at a time. */
const PIECE = 1 << 20;

/** Something the map can be read from (a `Deno.FsFile`, or bytes in tests). */
export interface MapSource {
  seekSync(offset: number, whence: Deno.SeekMode): number;
  readSync(p: Uint8Array): number | null;
}

/** Scans bytes already in memory (the same result as {@linkcode scanBlockMap}). */
export function scanMapBytes(map: Uint8Array, maxRanges: number): BlockMapScan {
  const scan: BlockMapScan = { received: 0, missing: [], truncated: false };
  let open = -1;
  addPiece(scan, map, 0, maxRanges, (start) => (open = start), () => open);
  if (open >= 0) closeRange(scan, open, map.length - 1, maxRanges);
  return scan;
}

function closeRange(scan: BlockMapScan, first: number, last: number, maxRanges: number): void {
  if (scan.missing.length < maxRanges) scan.missing.push([first, last]);
  else scan.truncated = true;
}

/**
 * Adds one piece (blocks `offset .. offset + piece.length - 1`) to the scan, with
 * the missing run still open from earlier pieces passed in and out.
 */
function addPiece(
  scan: BlockMapScan,
  piece: Uint8Array,
  offset: number,
  maxRanges: number,
  setOpen: (start: number) => void,
  getOpen: () => number,
): void {
  let i = 0;
  const n = piece.length;
  while (i < n) {
    if (getOpen() < 0) {
      // In a received run: jump to the next 0 (indexOf runs natively).
      const zero = piece.indexOf(0, i);
      const end = zero < 0 ? n : zero;
      scan.received += end - i;
      if (zero < 0) return;
      setOpen(offset + zero);
      i = zero + 1;
    } else {
      // In a missing run: jump to the next received byte.
      const one = piece.indexOf(1, i);
      if (one < 0) return;
      closeRange(scan, getOpen(), offset + one - 1, maxRanges);
      setOpen(-1);
      i = one;
    }
  }
}

/**
 * Scans the first `total` bytes of a block map file in pieces. Bytes past the
 * file's end count as missing. `maxRanges` 0 only counts.
 */
export function scanBlockMap(file: MapSource, total: number, maxRanges: number): BlockMapScan {
  const scan: BlockMapScan = { received: 0, missing: [], truncated: false };
  const buffer = new Uint8Array(Math.min(PIECE, Math.max(1, total)));
  let open = -1;
  file.seekSync(0, Deno.SeekMode.Start);
  let offset = 0;
  while (offset < total) {
    const want = Math.min(buffer.length, total - offset);
    let filled = 0;
    while (filled < want) {
      const n = file.readSync(buffer.subarray(filled, want));
      if (n === null || n === 0) break;
      filled += n;
    }
    // A short map (a crash while it was sized) reads as zeros: those blocks are missing.
    buffer.fill(0, filled, want);
    addPiece(scan, buffer.subarray(0, want), offset, maxRanges, (s) => (open = s), () => open);
    offset += want;
  }
  if (open >= 0) closeRange(scan, open, total - 1, maxRanges);
  if (maxRanges === 0) scan.truncated = scan.received < total;
  return scan;
}

/** Expands ranges into block indices (client side: a bounded list, for one round). */
export function rangesToIndices(ranges: BlockRange[]): number[] {
  const out: number[] = [];
  for (const [first, last] of ranges) for (let i = first; i <= last; i++) out.push(i);
  return out;
}
