// Writes a tiny llama-architecture GGUF chat model with no dependency, for the `tiny-chat`
// default and the tests: random weights, so its words are noise, but llama.cpp loads, tokenizes,
// evaluates and samples it exactly as it does a real model. Format: GGUF v3
// (github.com/ggml-org/ggml/blob/master/docs/gguf.md): header, key-value metadata, tensor
// infos, then tensor data aligned to 32 bytes.

const ALIGN = 32;
// GGUF metadata value types.
const T = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 };
// ggml tensor types.
const GGML = { F32: 0, F16: 1 };
// llama.cpp token types.
const TOKEN = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 };

class Writer {
  parts = [];
  length = 0;
  push(buf) {
    this.parts.push(buf);
    this.length += buf.length;
  }
  u32(n) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.push(b);
  }
  i32(n) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    this.push(b);
  }
  u64(n) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    this.push(b);
  }
  f32(x) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(x);
    this.push(b);
  }
  str(s) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  pad() {
    const n = (ALIGN - (this.length % ALIGN)) % ALIGN;
    if (n > 0) this.push(Buffer.alloc(n));
  }
}

function writeValue(w, value) {
  const { type, v } = value;
  if (type === T.ARRAY) {
    w.u32(value.of);
    w.u64(v.length);
    for (const item of v) writeValue(w, { type: value.of, v: item });
    return;
  }
  if (type === T.UINT32) w.u32(v);
  else if (type === T.INT32) w.i32(v);
  else if (type === T.FLOAT32) w.f32(v);
  else if (type === T.BOOL) w.push(Buffer.from([v ? 1 : 0]));
  else if (type === T.STRING) w.str(v);
  else throw new Error(`unsupported GGUF value type ${type}`);
}

const u32 = (v) => ({ type: T.UINT32, v });
const f32 = (v) => ({ type: T.FLOAT32, v });
const bool = (v) => ({ type: T.BOOL, v });
const str = (v) => ({ type: T.STRING, v });
const arr = (of, v) => ({ type: T.ARRAY, of, v });

/** Encodes a GGUF file from metadata (key -> typed value) and tensors ({name, dims (innermost first), type, data}). */
export function gguf(metadata, tensors) {
  const w = new Writer();
  w.push(Buffer.from('GGUF', 'ascii'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(Object.keys(metadata).length);
  for (const [key, value] of Object.entries(metadata)) {
    w.str(key);
    w.u32(value.type);
    writeValue(w, value);
  }
  let offset = 0;
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.length / ALIGN) * ALIGN;
  }
  w.pad();
  for (const t of tensors) {
    w.push(t.data);
    w.pad();
  }
  return Buffer.concat(w.parts);
}

/** IEEE 754 half precision, round to nearest (weights here are small and finite). */
function toHalf(x) {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) return sign; // too small: zero
  if (exp >= 31) return sign | 0x7c00;
  const half = sign | (exp << 10) | (mant >>> 13);
  return mant & 0x1000 ? half + 1 : half;
}

function f16(values) {
  const out = Buffer.alloc(values.length * 2);
  for (let i = 0; i < values.length; i++) out.writeUInt16LE(toHalf(values[i]), i * 2);
  return out;
}

const f32buf = (values) => Buffer.from(Float32Array.from(values).buffer);

/** Approximately normal values (sum of uniforms) with the given standard deviation. */
function normals(n, std, rand) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() + rand() + rand() + rand() - 2) * std * Math.sqrt(3);
  return a;
}

/**
 * The chat template: ChatML with tools as Qwen 2.5 writes them (a <tools> list in the system
 * message, calls as <tool_call> JSON, results as <tool_response>), so a tool call goes through
 * the model's own template, as with real models. Without tools it renders plain ChatML, after
 * the BOS token (the tokenizer asks for one).
 */
const CHAT_TEMPLATE = [
  '{{- bos_token }}\n',
  '{%- if tools %}\n',
  "    {{- '<|im_start|>system\\n' }}\n",
  "    {%- if messages[0]['role'] == 'system' %}\n",
  "        {{- messages[0]['content'] + '\\n\\n' }}\n",
  '    {%- endif %}\n',
  '    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}\n',
  '    {%- for tool in tools %}\n',
  '        {{- "\\n" }}\n',
  '        {{- tool | tojson }}\n',
  '    {%- endfor %}\n',
  '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}\n',
  '{%- else %}\n',
  "    {%- if messages[0]['role'] == 'system' %}\n",
  "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n",
  '    {%- endif %}\n',
  '{%- endif %}\n',
  '{%- for message in messages %}\n',
  '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}\n',
  "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n",
  '    {%- elif message.role == "assistant" %}\n',
  "        {{- '<|im_start|>' + message.role }}\n",
  '        {%- if message.content %}\n',
  "            {{- '\\n' + message.content }}\n",
  '        {%- endif %}\n',
  '        {%- for tool_call in message.tool_calls %}\n',
  '            {%- if tool_call.function is defined %}\n',
  '                {%- set tool_call = tool_call.function %}\n',
  '            {%- endif %}\n',
  '            {{- \'\\n<tool_call>\\n{"name": "\' }}\n',
  '            {{- tool_call.name }}\n',
  '            {{- \'", "arguments": \' }}\n',
  '            {{- tool_call.arguments | tojson }}\n',
  "            {{- '}\\n</tool_call>' }}\n",
  '        {%- endfor %}\n',
  "        {{- '<|im_end|>\\n' }}\n",
  '    {%- elif message.role == "tool" %}\n',
  '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n',
  "            {{- '<|im_start|>user' }}\n",
  '        {%- endif %}\n',
  "        {{- '\\n<tool_response>\\n' }}\n",
  '        {{- message.content }}\n',
  "        {{- '\\n</tool_response>' }}\n",
  '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n',
  "            {{- '<|im_end|>\\n' }}\n",
  '        {%- endif %}\n',
  '    {%- endif %}\n',
  '{%- endfor %}\n',
  '{%- if add_generation_prompt %}\n',
  "    {{- '<|im_start|>assistant\\n' }}\n",
  '{%- endif %}\n',
].join('');

/**
 * The vocabulary: five special tokens, the 256 bytes, and "▁" (SentencePiece's space). Every
 * text tokenizes, byte by byte; the model's output favours printable ASCII (see `bias`).
 */
function vocabulary() {
  const tokens = ['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>'];
  const types = [TOKEN.UNKNOWN, TOKEN.CONTROL, TOKEN.CONTROL, TOKEN.CONTROL, TOKEN.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN.BYTE);
  }
  tokens.push('\u2581');
  types.push(TOKEN.NORMAL);
  return { tokens, types, byteBase: 5, space: tokens.length - 1 };
}

/**
 * A llama-architecture decoder with random weights. Dimension 0 of every token embedding is a
 * large constant and the residual updates are small, so after the final norm that dimension acts
 * as a bias input: the output rows use it to make printable ASCII likely, control bytes, high
 * bytes and most special tokens very unlikely, and the end-of-turn token rare. Greedy generations
 * therefore run to `max_tokens` (for benchmarks), sampled ones now and then end by themselves
 * (for tests), and both read as ASCII noise.
 */
export function tinyLlama({ seed, rand, embd = 128, layers = 4, heads = 4, ff = 384, context = 2048 }) {
  const { tokens, types, byteBase, space } = vocabulary();
  const vocab = tokens.length;
  const bias = new Float32Array(vocab).fill(-12);
  for (let b = 0x20; b < 0x7f; b++) bias[byteBase + b] = 0;
  for (let b = 0x61; b <= 0x7a; b++) bias[byteBase + b] = 1.5; // a-z
  bias[space] = 2.5;
  bias[byteBase + 0x0a] = -1; // newline, now and then
  bias[4] = 1; // <|im_end|>: sampled at temperature 1, about one generation in six ends by itself within 400 tokens

  const embedding = normals(embd * vocab, 1, rand);
  for (let t = 0; t < vocab; t++) embedding[t * embd] = 8;
  const output = normals(embd * vocab, 1.5, rand);
  for (let t = 0; t < vocab; t++) output[t * embd] = bias[t];

  const tensors = [
    { name: 'token_embd.weight', dims: [embd, vocab], type: GGML.F16, data: f16(embedding) },
    { name: 'output_norm.weight', dims: [embd], type: GGML.F32, data: f32buf(new Float32Array(embd).fill(1)) },
    { name: 'output.weight', dims: [embd, vocab], type: GGML.F16, data: f16(output) },
  ];
  const std = 0.02;
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    const matrix = (name, inner, outer) => ({
      name: p + name,
      dims: [inner, outer],
      type: GGML.F16,
      data: f16(normals(inner * outer, std, rand)),
    });
    tensors.push(
      { name: `${p}attn_norm.weight`, dims: [embd], type: GGML.F32, data: f32buf(new Float32Array(embd).fill(1)) },
      matrix('attn_q.weight', embd, embd),
      matrix('attn_k.weight', embd, embd),
      matrix('attn_v.weight', embd, embd),
      matrix('attn_output.weight', embd, embd),
      { name: `${p}ffn_norm.weight`, dims: [embd], type: GGML.F32, data: f32buf(new Float32Array(embd).fill(1)) },
      matrix('ffn_gate.weight', embd, ff),
      matrix('ffn_up.weight', embd, ff),
      matrix('ffn_down.weight', ff, embd),
    );
  }

  const metadata = {
    'general.architecture': str('llama'),
    'general.name': str('tiny-chat'),
    'general.description': str(`random-weight test model from infergate/models/generate.mjs, seed ${seed}`),
    'general.alignment': u32(ALIGN),
    'llama.context_length': u32(context),
    'llama.embedding_length': u32(embd),
    'llama.block_count': u32(layers),
    'llama.feed_forward_length': u32(ff),
    'llama.attention.head_count': u32(heads),
    'llama.attention.head_count_kv': u32(heads),
    'llama.attention.layer_norm_rms_epsilon': f32(1e-5),
    'llama.rope.dimension_count': u32(embd / heads),
    'llama.rope.freq_base': f32(10000),
    'llama.vocab_size': u32(vocab),
    'tokenizer.ggml.model': str('llama'),
    'tokenizer.ggml.tokens': arr(T.STRING, tokens),
    'tokenizer.ggml.scores': arr(
      T.FLOAT32,
      tokens.map(() => 0),
    ),
    'tokenizer.ggml.token_type': arr(T.INT32, types),
    'tokenizer.ggml.unknown_token_id': u32(0),
    'tokenizer.ggml.bos_token_id': u32(1),
    'tokenizer.ggml.eos_token_id': u32(4),
    'tokenizer.ggml.add_bos_token': bool(true),
    'tokenizer.ggml.add_eos_token': bool(false),
    'tokenizer.ggml.add_space_prefix': bool(false),
    'tokenizer.chat_template': str(CHAT_TEMPLATE),
  };
  return gguf(metadata, tensors);
}
