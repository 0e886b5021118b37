#!/usr/bin/env node
// Writes the bundled tiny models with no dependency: the chat model as GGUF (see gguf.mjs), the
// others as ONNX files: ONNX files are protobuf
// messages, and the few message types needed here are encoded by hand below (field numbers
// from onnx/onnx.proto). Weights come from a seeded PRNG, so the output is byte-for-byte
// reproducible: `node models/generate.mjs` rewrites the files the repository ships.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tinyLlama } from './gguf.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

// ---- protobuf wire encoding (varint, length-delimited) ----
function varint(n) {
  let v = BigInt.asUintN(64, BigInt(n));
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
const tag = (field, wire) => varint((field << 3) | wire);
const int = (field, n) => Buffer.concat([tag(field, 0), varint(n)]);
const bytes = (field, buf) => Buffer.concat([tag(field, 2), varint(buf.length), buf]);
const str = (field, s) => bytes(field, Buffer.from(s, 'utf8'));
const msg = (field, parts) => bytes(field, Buffer.concat(parts));

// ---- ONNX messages ----
const DT = { FLOAT: 1, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10 };

function tensor(name, dataType, dims, raw) {
  return [...dims.map((d) => int(1, d)), int(2, dataType), str(8, name), bytes(9, raw)];
}
function valueInfo(name, elemType, shape) {
  const dims = shape.map((d) => msg(1, [typeof d === 'string' ? str(2, d) : int(1, d)]));
  return [str(1, name), msg(2, [msg(1, [int(1, elemType), msg(2, dims)])])];
}
function attrInt(name, i) {
  return msg(5, [str(1, name), int(3, i), int(20, 2)]);
}
function node(op, inputs, outputs, attrs = []) {
  const name = `${op}_${outputs[0]}`;
  return [...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, name), str(4, op), ...attrs];
}
function model({ name, doc, nodes, initializers, inputs, outputs, opset = 13 }) {
  const graph = [
    ...nodes.map((n) => msg(1, n)),
    str(2, name),
    ...initializers.map((t) => msg(5, t)),
    str(10, doc),
    ...inputs.map((v) => msg(11, v)),
    ...outputs.map((v) => msg(12, v)),
  ];
  return Buffer.concat([
    int(1, 8),
    str(2, 'infergate/models/generate.mjs'),
    str(3, '1'),
    msg(7, graph),
    msg(8, [str(1, ''), int(2, opset)]),
  ]);
}

// ---- deterministic weights ----
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function floats(n, scale, rand) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return Buffer.from(a.buffer);
}
const i64 = (values) => Buffer.from(BigInt64Array.from(values.map(BigInt)).buffer);

/** An MLP: input [batch, IN] -> (MatMul, Add, Relu) x hidden layers -> MatMul, Add -> Softmax -> output [batch, OUT]. */
export function mlp({ seed, inputs = 32, hidden = [512, 512], outputs = 8 }) {
  const rand = prng(seed);
  const nodes = [];
  const inits = [];
  let prev = 'input';
  let width = inputs;
  const layers = [...hidden, outputs];
  layers.forEach((out, i) => {
    const w = `w${i}`;
    const b = `b${i}`;
    inits.push(tensor(w, DT.FLOAT, [width, out], floats(width * out, Math.sqrt(6 / (width + out)), rand)));
    inits.push(tensor(b, DT.FLOAT, [out], floats(out, 0.1, rand)));
    nodes.push(node('MatMul', [prev, w], [`mm${i}`]));
    const last = i === layers.length - 1;
    nodes.push(node('Add', [`mm${i}`, b], [last ? 'logits' : `pre${i}`]));
    if (!last) nodes.push(node('Relu', [`pre${i}`], [`h${i}`]));
    prev = last ? 'logits' : `h${i}`;
    width = out;
  });
  nodes.push(node('Softmax', ['logits'], ['output'], [attrInt('axis', -1)]));
  return model({
    name: 'tiny_mlp',
    doc: `tiny MLP ${inputs}-${hidden.join('-')}-${outputs}, seed ${seed}`,
    nodes,
    initializers: inits,
    inputs: [valueInfo('input', DT.FLOAT, ['batch', inputs])],
    outputs: [valueInfo('output', DT.FLOAT, ['batch', outputs])],
  });
}

/** Text embedding: token ids -> embedding lookup -> masked mean pool -> L2 normalisation. */
export function embedder({ seed, vocab = 4096, dim = 64 }) {
  const rand = prng(seed);
  const nodes = [
    node('Gather', ['table', 'input_ids'], ['tok'], [attrInt('axis', 0)]),
    node('Cast', ['attention_mask'], ['maskf'], [attrInt('to', DT.FLOAT)]),
    node('Unsqueeze', ['maskf', 'axis2'], ['mask3']),
    node('Mul', ['tok', 'mask3'], ['masked']),
    node('ReduceSum', ['masked', 'axis1'], ['sum'], [attrInt('keepdims', 0)]),
    node('ReduceSum', ['mask3', 'axis1'], ['count'], [attrInt('keepdims', 0)]),
    node('Max', ['count', 'eps'], ['count_safe']),
    node('Div', ['sum', 'count_safe'], ['mean']),
    node('LpNormalization', ['mean'], ['embedding'], [attrInt('axis', -1), attrInt('p', 2)]),
  ];
  const eps = Buffer.alloc(4);
  eps.writeFloatLE(1e-9);
  return model({
    name: 'tiny_embed',
    doc: `tiny text embedder: vocab ${vocab}, dim ${dim}, seed ${seed}`,
    nodes,
    initializers: [
      tensor('table', DT.FLOAT, [vocab, dim], floats(vocab * dim, 1, rand)),
      tensor('axis1', DT.INT64, [1], i64([1])),
      tensor('axis2', DT.INT64, [1], i64([2])),
      tensor('eps', DT.FLOAT, [], eps),
    ],
    inputs: [valueInfo('input_ids', DT.INT64, ['batch', 'sequence']), valueInfo('attention_mask', DT.INT64, ['batch', 'sequence'])],
    outputs: [valueInfo('embedding', DT.FLOAT, ['batch', dim])],
  });
}

/** One input and output per datatype the KServe API maps: FP16 doubled, INT32 plus one, INT64 echoed, BOOL negated, BYTES echoed. */
export function datatypes() {
  const two16 = Buffer.alloc(2);
  two16.writeUInt16LE(0x4000); // 2.0 in IEEE 754 half precision
  const one32 = Buffer.alloc(4);
  one32.writeInt32LE(1);
  return model({
    name: 'tiny_types',
    doc: 'one input and output per datatype',
    nodes: [
      node('Mul', ['half', 'two'], ['half_x2']),
      node('Add', ['int', 'one'], ['int_plus1']),
      node('Identity', ['long'], ['long_echo']),
      node('Not', ['flag'], ['flag_not']),
      node('Identity', ['text'], ['text_echo']),
    ],
    initializers: [tensor('two', DT.FLOAT16, [], two16), tensor('one', DT.INT32, [], one32)],
    inputs: [
      valueInfo('half', DT.FLOAT16, ['batch', 4]),
      valueInfo('int', DT.INT32, ['batch', 4]),
      valueInfo('long', DT.INT64, ['batch', 4]),
      valueInfo('flag', DT.BOOL, ['batch', 4]),
      valueInfo('text', DT.STRING, ['batch', 1]),
    ],
    outputs: [
      valueInfo('half_x2', DT.FLOAT16, ['batch', 4]),
      valueInfo('int_plus1', DT.INT32, ['batch', 4]),
      valueInfo('long_echo', DT.INT64, ['batch', 4]),
      valueInfo('flag_not', DT.BOOL, ['batch', 4]),
      valueInfo('text_echo', DT.STRING, ['batch', 1]),
    ],
  });
}

function write(rel, buf) {
  const file = join(HERE, rel);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, buf);
  console.log(`wrote ${rel} (${buf.length} bytes)`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  write('tiny-mlp/1/model.onnx', mlp({ seed: 1 }));
  write('tiny-mlp/2/model.onnx', mlp({ seed: 2 }));
  write('tiny-embed/1/model.onnx', embedder({ seed: 3 }));
  write('tiny-types/1/model.onnx', datatypes());
  write('tiny-chat/1/model.gguf', tinyLlama({ seed: 4, rand: prng(4) }));
}
