/** The SSE relay: the raw text it passes on after each piece holds exactly the events that piece completed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createParser } from 'eventsource-parser';
import fc from 'fast-check';
import { SseParser, SseRelay, formatEvent, type SseEvent } from '../../src/core/sse.js';

const plain = (events: readonly SseEvent[]) => events.map((e) => ({ id: e.id, event: e.event, data: e.data }));

/** A stream of events with mixed line ends, comments, `event:`/`id:` fields and multi-line data. */
const stream = fc
  .array(
    fc.record({
      eol: fc.constantFrom('\n', '\r', '\r\n'),
      comment: fc.boolean(),
      event: fc.option(fc.constantFrom('message', 'delta'), { nil: undefined }),
      id: fc.option(fc.constantFrom('1', 'x'), { nil: undefined }),
      data: fc.array(fc.string({ unit: fc.constantFrom('a', '{', '"', ':', ' ', 'é') }), { minLength: 1, maxLength: 3 }),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((events) =>
    events
      .map(({ eol, comment, event, id, data }) => {
        let text = comment ? `: keep-alive${eol}` : '';
        if (event !== undefined) text += `event: ${event}${eol}`;
        if (id !== undefined) text += `id: ${id}${eol}`;
        for (const line of data) text += `data: ${line}${eol}`;
        return text + eol;
      })
      .join(''),
  );

/** eventsource-parser itself on a whole stream (the ':' after it, a comment's start, lets a final CR end its line). */
function library(text: string): ReturnType<typeof plain> {
  const events: SseEvent[] = [];
  createParser({ onEvent: (e) => void events.push(e) }).feed(`${text}:`);
  return plain(events);
}

function parseWhole(text: string): ReturnType<typeof plain> {
  return plain(new SseParser().push(text));
}

describe('SSE relay', () => {
  it('splits CRLF, CR and LF events cut anywhere, passing on whole events untouched and holding the rest', () => {
    fc.assert(
      fc.property(stream, fc.array(fc.nat(), { maxLength: 12 }), (text, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const pieces: string[] = [];
        let from = 0;
        for (const p of [...points, text.length]) {
          pieces.push(text.slice(from, p));
          from = p;
        }
        const relay = new SseRelay();
        let passed = '';
        const events: ReturnType<typeof plain> = [];
        for (const piece of pieces) {
          const got = plain(relay.push(piece));
          // What is passed on parses, alone, to exactly the events this piece completed.
          assert.deepEqual(parseWhole(relay.text), got);
          passed += relay.text;
          events.push(...got);
        }
        assert.equal(passed + relay.rest, text, 'nothing lost, nothing changed');
        assert.deepEqual(events, parseWhole(text));
        assert.deepEqual(events, library(text), 'the same events as eventsource-parser reads from the whole stream');
      }),
      { numRuns: 500 },
    );
  });

  it('ends a line at a CR that ends a piece, and takes an LF that follows in the next piece as part of it', () => {
    const relay = new SseRelay();
    assert.deepEqual(plain(relay.push('data: a\r\r')), [{ id: undefined, event: undefined, data: 'a' }]);
    assert.equal(relay.text, 'data: a\r\r');
    assert.deepEqual(plain(relay.push('\ndata: b\r')), []);
    assert.deepEqual(plain(relay.push('\n\r\n')), [{ id: undefined, event: undefined, data: 'b' }]);
    assert.equal(relay.text, '\ndata: b\r\n\r\n');
  });

  it('writes an event back as LF-ended text that parses to the same event', () => {
    const event = { id: '7', event: 'delta', data: '{"a":\n1}' };
    assert.equal(formatEvent(event), 'id: 7\nevent: delta\ndata: {"a":\ndata: 1}\n\n');
    assert.deepEqual(parseWhole(formatEvent(event)), [event]);
  });
});
