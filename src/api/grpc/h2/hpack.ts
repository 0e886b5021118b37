/**
 * HPACK (RFC 7541) for the gRPC server's HTTP/2: a decoder with the dynamic table and Huffman
 * strings, for what clients send; and literal encodings without indexing for what the server sends,
 * so the server never touches the client's view of its own table.
 */

/** A decoding failure: the connection's header state is lost, so it ends with COMPRESSION_ERROR. */
export class HpackError extends Error {}

/** The static table (Appendix A): [name, value], index 1 first. */
const STATIC: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/**
 * The Huffman code's lengths in bits for symbols 0-255 and EOS (Appendix B). The code is canonical:
 * codes of one length are consecutive in symbol order, each length's first code following the last
 * of the shorter ones, so the lengths alone define it.
 */
// prettier-ignore
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;
const MAX_CODE_LENGTH = 30;

/** Canonical decoding tables: per length, its first code, how many codes it has, and where its symbols start. */
const huffman = (() => {
  const symbols = HUFFMAN_LENGTHS.map((length, symbol) => ({ length, symbol })).sort((a, b) => a.length - b.length || a.symbol - b.symbol);
  const count = new Uint32Array(MAX_CODE_LENGTH + 1);
  for (const s of symbols) count[s.length]! += 1;
  const first = new Uint32Array(MAX_CODE_LENGTH + 1);
  const offset = new Uint32Array(MAX_CODE_LENGTH + 1);
  let code = 0;
  let index = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    first[length] = code;
    offset[length] = index;
    code = (code + count[length]!) * 2;
    index += count[length]!;
  }
  const codes = new Uint32Array(EOS + 1);
  for (let k = 0; k < symbols.length; k++) {
    const s = symbols[k]!;
    codes[s.symbol] = first[s.length]! + (k - offset[s.length]!);
  }
  return { count, first, offset, sorted: Uint16Array.from(symbols, (s) => s.symbol), codes };
})();

/** Decodes a Huffman string (§5.2) into latin1 text: octets as they are. */
export function huffmanDecode(bytes: Uint8Array, start: number, end: number): string {
  const out: number[] = [];
  let code = 0;
  let length = 0;
  let ones = true; // the bits since the last symbol are all ones (the only padding allowed)
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >> bit) & 1;
      code = code * 2 + b;
      length++;
      ones &&= b === 1;
      if (length > MAX_CODE_LENGTH) throw new HpackError('Huffman code longer than 30 bits');
      const k = code - huffman.first[length]!;
      if (k >= 0 && k < huffman.count[length]!) {
        const symbol = huffman.sorted[huffman.offset[length]! + k]!;
        if (symbol === EOS) throw new HpackError('Huffman string holds EOS');
        out.push(symbol);
        code = 0;
        length = 0;
        ones = true;
      }
    }
  }
  if (length > 7 || !ones) throw new HpackError('Huffman string padded with other than up to 7 one bits');
  let text = '';
  for (let k = 0; k < out.length; k += 4096) text += String.fromCharCode(...out.slice(k, k + 4096));
  return text;
}

/** Encodes latin1 text as a Huffman string (used by tests to play a client; the server sends literals). */
export function huffmanEncode(text: string): Buffer {
  const out: number[] = [];
  let acc = 0n;
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const symbol = text.charCodeAt(i) & 0xff;
    acc = (acc << BigInt(HUFFMAN_LENGTHS[symbol]!)) | BigInt(huffman.codes[symbol]!);
    bits += HUFFMAN_LENGTHS[symbol]!;
    while (bits >= 8) {
      bits -= 8;
      out.push(Number((acc >> BigInt(bits)) & 0xffn));
    }
  }
  if (bits > 0) out.push(Number(((acc << BigInt(8 - bits)) | ((1n << BigInt(8 - bits)) - 1n)) & 0xffn));
  return Buffer.from(out);
}

/** Decoded header fields as a flat list: name, value, name, value, ... in the order sent. */
export type HeaderList = string[];

/** The first value of `name` in a decoded list; undefined when absent. */
export function headerValue(list: HeaderList, name: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

/** The decoding side of one connection: its dynamic table persists from header block to header block. */
export class HpackDecoder {
  /** Newest entry last. */
  readonly #names: string[] = [];
  readonly #values: string[] = [];
  #size = 0;
  #maxSize: number;

  /** `maxTableSize`: SETTINGS_HEADER_TABLE_SIZE as this side advertised it (4,096 by default). */
  constructor(private readonly maxTableSize = 4096) {
    this.#maxSize = maxTableSize;
  }

  /**
   * Decodes one complete header block. Throws HpackError when the block is malformed; a list larger
   * than `maxListSize` (octets counted as RFC 7540 §6.5.2 does) is still decoded, to keep the table
   * in step, and reported by the returned `oversize`.
   */
  decode(block: Uint8Array, maxListSize: number): { list: HeaderList; oversize: boolean } {
    const list: HeaderList = [];
    let listSize = 0;
    let i = 0;
    let sizeUpdatesAllowed = true;
    const end = block.length;
    const integer = (prefix: number): number => {
      const mask = (1 << prefix) - 1;
      let value = block[i++]! & mask;
      if (value < mask) return value;
      let shift = 0;
      let byte: number;
      do {
        if (i >= end) throw new HpackError('header block ends inside an integer');
        byte = block[i++]!;
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if (shift > 28) throw new HpackError('integer too large');
      } while (byte & 0x80);
      return value;
    };
    const string = (): string => {
      if (i >= end) throw new HpackError('header block ends before a string');
      const huff = (block[i]! & 0x80) !== 0;
      const length = integer(7);
      if (i + length > end) throw new HpackError('string longer than the header block');
      const s = huff ? huffmanDecode(block, i, i + length) : latin1(block, i, i + length);
      i += length;
      return s;
    };
    while (i < end) {
      const byte = block[i]!;
      let name: string;
      let value: string;
      if (byte & 0x80) {
        const index = integer(7);
        name = this.#name(index);
        value = this.#value(index);
      } else if ((byte & 0xe0) === 0x20) {
        if (!sizeUpdatesAllowed) throw new HpackError('dynamic table size update after a header field');
        const size = integer(5);
        if (size > this.maxTableSize) throw new HpackError(`dynamic table size ${size} over the ${this.maxTableSize} allowed`);
        this.#maxSize = size;
        this.#evict(0);
        continue;
      } else {
        const indexing = (byte & 0xc0) === 0x40;
        const index = integer(indexing ? 6 : 4);
        name = index === 0 ? string() : this.#name(index);
        value = string();
        if (indexing) this.#insert(name, value);
      }
      sizeUpdatesAllowed = false;
      listSize += name.length + value.length + 32;
      if (listSize <= maxListSize) list.push(name, value);
    }
    return { list, oversize: listSize > maxListSize };
  }

  #name(index: number): string {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC.length) return STATIC[index - 1]![0];
    const k = this.#names.length - (index - STATIC.length);
    if (k < 0) throw new HpackError(`index ${index} beyond the tables`);
    return this.#names[k]!;
  }

  #value(index: number): string {
    if (index <= STATIC.length) return STATIC[index - 1]![1];
    return this.#values[this.#names.length - (index - STATIC.length)]!;
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.#evict(size);
    // An entry larger than the table empties it and is not added (§4.4).
    if (size > this.#maxSize) return;
    this.#names.push(name);
    this.#values.push(value);
    this.#size += size;
  }

  /** Evicts oldest entries until `room` more octets fit. */
  #evict(room: number): void {
    let drop = 0;
    while (this.#size + room > this.#maxSize && drop < this.#names.length) {
      this.#size -= this.#names[drop]!.length + this.#values[drop]!.length + 32;
      drop++;
    }
    if (drop > 0) {
      this.#names.splice(0, drop);
      this.#values.splice(0, drop);
    }
  }
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  // Short strings decode faster through fromCharCode than through a Buffer view.
  if (end - start < 32) {
    let s = '';
    for (let k = start; k < end; k++) s += String.fromCharCode(bytes[k]!);
    return s;
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

function encodeInteger(out: number[], value: number, prefix: number, flags: number): void {
  const mask = (1 << prefix) - 1;
  if (value < mask) {
    out.push(flags | value);
    return;
  }
  out.push(flags | mask);
  value -= mask;
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

/** Appends a literal header field without indexing (§6.2.2), its name indexed from the static table when there. */
export function literal(out: number[], name: string, value: string): void {
  const index = STATIC_NAME_INDEX.get(name);
  if (index === undefined) {
    out.push(0);
    encodeInteger(out, name.length, 7, 0);
    for (let k = 0; k < name.length; k++) out.push(name.charCodeAt(k) & 0xff);
  } else {
    encodeInteger(out, index, 4, 0);
  }
  encodeInteger(out, value.length, 7, 0);
  for (let k = 0; k < value.length; k++) out.push(value.charCodeAt(k) & 0xff);
}

/** An indexed header field (§6.1) from the static table, e.g. `:status: 200`. */
export function indexed(out: number[], name: string, value: string): void {
  const index = STATIC.findIndex(([n, v]) => n === name && v === value);
  if (index < 0) throw new Error(`${name}: ${value} is not in the static table`);
  encodeInteger(out, index + 1, 7, 0x80);
}

/** Encodes a header list for tests playing a client: every field a literal, with or without incremental indexing. */
export function encodeLiterals(
  fields: ReadonlyArray<readonly [string, string]>,
  options: { huffman?: boolean; index?: boolean } = {},
): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (options.index !== true && options.huffman !== true) {
      literal(out, name, value);
      continue;
    }
    out.push(options.index === true ? 0x40 : 0);
    for (const text of [name, value]) {
      const bytes = options.huffman === true ? huffmanEncode(text) : Buffer.from(text, 'latin1');
      encodeInteger(out, bytes.length, 7, options.huffman === true ? 0x80 : 0);
      out.push(...bytes);
    }
  }
  return Buffer.from(out);
}

const STATIC_NAME_INDEX = new Map<string, number>();
STATIC.forEach(([name], k) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, k + 1);
});
