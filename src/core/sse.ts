/** Server-Sent Events text, arriving in pieces of any size, split into whole events. */

const NONE: readonly string[] = [];

export class SseSplitter {
  #tail = '';

  /** The events `piece` completes, in order, each without the blank line that ends it. */
  push(piece: string): readonly string[] {
    const text = this.#tail + piece;
    const end = text.lastIndexOf('\n\n');
    if (end === -1) {
      this.#tail = text;
      return NONE;
    }
    this.#tail = text.slice(end + 2);
    return text.slice(0, end).split('\n\n');
  }

  /** What came after the last whole event: an event cut short, or ''. */
  get rest(): string {
    return this.#tail;
  }
}
