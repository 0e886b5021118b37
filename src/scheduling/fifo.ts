/**
 * A first-in first-out queue on a ring buffer that doubles when full (the shape of undici's
 * `fixed-queue.js`): push and shift are O(1), where `Array.prototype.shift` moves every element
 * left. Waiting requests queue here on the hot path of a loaded deployment.
 */
export class Fifo<T> {
  #items: Array<T | undefined>;
  /** Index of the head; the tail is at (head + length) & mask. */
  #head = 0;
  #length = 0;

  /** `capacity` is rounded up to a power of two; the queue grows past it as needed. */
  constructor(capacity = 16) {
    let size = 1;
    while (size < capacity) size *= 2;
    this.#items = new Array<T | undefined>(size);
  }

  get length(): number {
    return this.#length;
  }

  push(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & (this.#items.length - 1)] = item;
    this.#length++;
  }

  /** The oldest item, left in place; undefined when empty. */
  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  /** Removes and returns the oldest item; undefined when empty. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined; // not kept alive by the buffer
    this.#head = (this.#head + 1) & (this.#items.length - 1);
    this.#length--;
    return item;
  }

  #grow(): void {
    const old = this.#items;
    const items = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.#length; i++) items[i] = old[(this.#head + i) & (old.length - 1)];
    this.#items = items;
    this.#head = 0;
  }
}
