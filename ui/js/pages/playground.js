/**
 * Playground: call a model as a client would, with a tenant's API key (the admin key is not one):
 * a chat, streamed as it is generated with its timings, an embedding, or a KServe v2 infer; and
 * the same request as a curl command (the key as $INFERGATE_API_KEY, never the key itself).
 */
import { admin, BASE, failureOf, modelCall, modelJson, seg } from '../api.js';
import { copyButton, field, fill, h, int, ms, num, setText } from '../dom.js';
import { SseParser } from '../live.js';

/** The tenant key typed here: this tab's memory only, not stored. */
let tenantKey = '';

function shellQuote(text) {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Zeros in `shape` (-1 dimensions as 1), nested as KServe accepts them flat: a body to start from. */
function templateBody(meta) {
  const inputs = (meta?.inputs ?? []).map((i) => {
    const shape = i.shape.map((d) => (d < 0 ? 1 : d));
    const count = Math.min(
      4096,
      shape.reduce((a, b) => a * b, 1),
    );
    const zero = i.datatype === 'BYTES' ? '' : i.datatype === 'BOOL' ? false : 0;
    return { name: i.name, shape, datatype: i.datatype, data: Array.from({ length: count }, () => zero) };
  });
  return JSON.stringify(
    { inputs: inputs.length === 0 ? [{ name: 'input', shape: [1, 1], datatype: 'FP32', data: [0] }] : inputs },
    null,
    2,
  );
}

export const playground = {
  title: 'Playground',
  mount(root, ctx) {
    const model = h('select', { required: true });
    const key = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', value: tenantKey, placeholder: 'ig-…' });
    const api = h(
      'select',
      {},
      [
        ['chat', 'Chat completion'],
        ['embeddings', 'Embeddings'],
        ['infer', 'KServe v2 infer'],
      ].map(([value, text]) => h('option', { value, text })),
    );
    const keyHint =
      ctx.info?.auth_mode === 'keys'
        ? 'Needed: this server takes tenant keys (create one under Tenants). Kept in this tab’s memory only.'
        : 'Optional here; kept in this tab’s memory only.';

    // Chat
    const system = h('textarea', { rows: '2', placeholder: 'You are a helpful assistant.' });
    const message = h('textarea', { rows: '3', required: true, value: 'Say hello in five words.' });
    const temperature = h('input', { type: 'number', min: '0', max: '2', step: '0.1', placeholder: 'model default' });
    const maxTokens = h('input', { type: 'number', min: '1', step: '1', value: '64' });
    const topP = h('input', { type: 'number', min: '0', max: '1', step: '0.05', placeholder: 'model default' });
    const stream = h('input', { type: 'checkbox', checked: true, id: 'pg-stream' });
    const answer = h('pre', { class: 'answer', 'data-output': 'chat' });
    const timings = h('dl', { class: 'facts timings' });
    const chatStatus = h('p', { class: 'muted', role: 'status' });
    const send = h('button', { type: 'submit', class: 'primary', text: 'Send' });
    const stop = h('button', { type: 'button', text: 'Stop', disabled: true });
    const chatForm = h(
      'form',
      { class: 'grid-form', 'data-api': 'chat' },
      field('System message', system),
      field('User message', message),
      field('Temperature', temperature),
      field('Max tokens', maxTokens),
      field('Top p', topP),
      h('div', { class: 'field check' }, stream, h('label', { for: 'pg-stream', text: 'Stream the answer' })),
      h('div', { class: 'actions' }, send, stop),
      chatStatus,
      h('h2', { text: 'Answer' }),
      answer,
      timings,
    );

    // Embeddings
    const embedInput = h('textarea', { rows: '3', required: true, value: 'hello world' });
    const embedOut = h('pre', { class: 'answer', 'data-output': 'embeddings' });
    const embedForm = h(
      'form',
      { class: 'grid-form', 'data-api': 'embeddings', hidden: true },
      field('Input', embedInput, 'One text per line.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Embed' })),
      h('h2', { text: 'Result' }),
      embedOut,
    );

    // KServe v2 infer
    const inferVersion = h('input', { type: 'text', placeholder: 'the default version', spellcheck: 'false' });
    const inferBody = h('textarea', { rows: '10', class: 'code', spellcheck: 'false', value: templateBody(null) });
    const inferOut = h('pre', { class: 'answer', 'data-output': 'infer' });
    const template = h('button', { type: 'button', text: 'Fill from the model’s metadata' });
    const inferForm = h(
      'form',
      { class: 'grid-form', 'data-api': 'infer', hidden: true },
      field('Version', inferVersion),
      field('Request body (JSON)', inferBody),
      h('div', { class: 'actions' }, template, h('button', { type: 'submit', class: 'primary', text: 'Infer' })),
      h('h2', { text: 'Result' }),
      inferOut,
    );

    const curl = h('code', { 'data-curl': '' });
    const forms = { chat: chatForm, embeddings: embedForm, infer: inferForm };

    fill(
      root,
      h('h1', { tabindex: '-1', text: 'Playground' }),
      h('div', { class: 'grid-form inline' }, field('Model', model), field('Tenant API key', key, keyHint), field('Call', api)),
      h('section', { class: 'card', 'aria-label': 'Request' }, chatForm, embedForm, inferForm),
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'curl-title' },
        h('h2', { id: 'curl-title', text: 'As a curl command' }),
        h('pre', { class: 'curl' }, curl),
        copyButton('Copy command', () => curl.textContent),
      ),
    );

    /** The request the current form would send: method, path and body. */
    const request = () => {
      const m = model.value;
      if (api.value === 'embeddings') {
        const lines = embedInput.value.split('\n').filter((l) => l !== '');
        return { path: '/v1/embeddings', body: { model: m, input: lines.length === 1 ? lines[0] : lines, encoding_format: 'float' } };
      }
      if (api.value === 'infer') {
        const v = inferVersion.value.trim();
        return { path: `/v2/models/${seg(m)}${v === '' ? '' : `/versions/${seg(v)}`}/infer`, body: inferBody.value };
      }
      const messages = [];
      if (system.value.trim() !== '') messages.push({ role: 'system', content: system.value });
      messages.push({ role: 'user', content: message.value });
      const body = { model: m, messages };
      if (temperature.value !== '') body.temperature = Number(temperature.value);
      if (maxTokens.value !== '') body.max_tokens = Number(maxTokens.value);
      if (topP.value !== '') body.top_p = Number(topP.value);
      if (stream.checked) {
        body.stream = true;
        body.stream_options = { include_usage: true };
      }
      return { path: '/v1/chat/completions', body };
    };

    const updateCurl = () => {
      const { path, body } = request();
      const text = typeof body === 'string' ? body.replace(/\s*\n\s*/g, ' ') : JSON.stringify(body);
      const parts = [`curl -s${api.value === 'chat' && stream.checked ? 'N' : ''} ${shellQuote(new URL(path.slice(1), BASE).href)}`];
      parts.push(`-H 'content-type: application/json'`);
      if (key.value !== '' || ctx.info?.auth_mode === 'keys') parts.push('-H "Authorization: Bearer $INFERGATE_API_KEY"');
      parts.push(`-d ${shellQuote(text)}`);
      setText(curl, parts.join(' \\\n  '));
    };

    const loadModels = async () => {
      let names;
      try {
        const { body } = await modelJson('GET', '/v1/models', undefined, key.value);
        names = body.data.map((m) => m.id);
      } catch {
        // In keys mode without a tenant key /v1/models answers 401: list them from the admin API.
        const answer = await admin('GET', '/admin/models').catch(() => ({ data: [] }));
        names = answer.data.map((m) => m.name);
      }
      const keep = model.value;
      fill(
        model,
        names.sort().map((n) => h('option', { value: n, text: n })),
      );
      if (names.includes(keep)) model.value = keep;
      updateCurl();
    };

    const fillTemplate = async () => {
      const v = inferVersion.value.trim();
      try {
        const { body } = await modelJson(
          'GET',
          `/v2/models/${seg(model.value)}${v === '' ? '' : `/versions/${seg(v)}`}`,
          undefined,
          key.value,
        );
        inferBody.value = templateBody(body);
        setText(inferOut, '');
      } catch (err) {
        setText(inferOut, `Could not read the model's metadata: ${err.message}`);
      }
      updateCurl();
    };
    template.addEventListener('click', () => void fillTemplate());

    api.addEventListener('change', () => {
      for (const [name, form] of Object.entries(forms)) form.hidden = name !== api.value;
      updateCurl();
    });
    key.addEventListener('change', () => {
      tenantKey = key.value;
      void loadModels();
    });
    for (const el of [model, key, api, system, message, temperature, maxTokens, topP, stream, embedInput, inferVersion, inferBody]) {
      el.addEventListener('input', updateCurl);
    }

    let running = null;
    stop.addEventListener('click', () => running?.abort());

    const showTimings = (rows) =>
      fill(
        timings,
        rows.map(([k, v, id]) => h('div', {}, h('dt', { text: k }), h('dd', { text: v, 'data-timing': id }))),
      );

    chatForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      running?.abort();
      running = new AbortController();
      const signal = running.signal;
      const { path, body } = request();
      setText(answer, '');
      showTimings([]);
      chatStatus.textContent = 'Sending…';
      send.disabled = true;
      stop.disabled = false;
      const t0 = performance.now();
      let first = null;
      let usage = null;
      let serverTimings = null;
      let chunks = 0;
      let version = null;
      try {
        const res = await modelCall('POST', path, body, key.value, signal);
        version = res.headers.get('x-model-version');
        if (!res.ok) throw failureOf(res.status, await res.json().catch(() => null));
        if (body.stream === true && res.body !== null) {
          chatStatus.textContent = 'Streaming…';
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          const parser = new SseParser();
          let finished = false;
          while (!finished) {
            const { value, done } = await reader.read();
            if (done) break;
            for (const e of parser.push(value)) {
              if (e.data === '[DONE]') {
                finished = true;
                break;
              }
              const chunk = JSON.parse(e.data);
              if (chunk.error !== undefined) throw failureOf(200, chunk);
              const delta = chunk.choices?.[0]?.delta?.content;
              if (typeof delta === 'string' && delta !== '') {
                first ??= performance.now();
                chunks += 1;
                answer.append(delta);
              }
              if (chunk.usage) usage = chunk.usage;
              if (chunk.timings) serverTimings = chunk.timings;
            }
          }
        } else {
          const whole = await res.json();
          first = performance.now();
          setText(answer, whole.choices?.[0]?.message?.content ?? '');
          usage = whole.usage ?? null;
          serverTimings = whole.timings ?? null;
        }
        const total = performance.now() - t0;
        const tokens = usage?.completion_tokens ?? chunks;
        const rows = [
          ['Time to first token', first === null ? '–' : ms(first - t0), 'ttft'],
          ['Total', ms(total), 'total'],
          ['Completion tokens', int(tokens), 'tokens'],
          ['Prompt tokens', int(usage?.prompt_tokens ?? null), 'prompt'],
          // The generation's own rate: the tokens after the first, over the time after it.
          [
            'Tokens/s',
            first === null || tokens < 2 || total <= first - t0 ? '–' : num((tokens - 1) / ((total - (first - t0)) / 1000), 1),
            'tps',
          ],
          ['Version', version ?? '–', 'version'],
        ];
        if (serverTimings !== null) {
          rows.push(
            ['Server: queued', ms(serverTimings.queued_ms), 'queued'],
            [
              'Server: generating',
              `${ms(serverTimings.predicted_ms)} (${num(serverTimings.predicted_per_second, 1)} tokens/s)`,
              'predicted',
            ],
          );
        }
        showTimings(rows);
        chatStatus.textContent = `Done in ${ms(total)}.`;
      } catch (err) {
        chatStatus.textContent = signal.aborted ? 'Stopped.' : `Refused: ${err.message}`;
      } finally {
        send.disabled = false;
        stop.disabled = true;
        running = null;
      }
    });

    embedForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const { path, body } = request();
      setText(embedOut, 'Sending…');
      const t0 = performance.now();
      try {
        const { body: res, headers } = await modelJson('POST', path, body, key.value);
        const took = performance.now() - t0;
        const lines = res.data.map(
          (d) =>
            `#${d.index}: ${d.embedding.length} dimensions [${d.embedding
              .slice(0, 6)
              .map((x) => x.toFixed(4))
              .join(', ')}, …]`,
        );
        lines.push(`${int(res.usage?.prompt_tokens ?? null)} tokens, ${ms(took)}, version ${headers.get('x-model-version') ?? '–'}`);
        setText(embedOut, lines.join('\n'));
      } catch (err) {
        setText(embedOut, `Refused: ${err.message}`);
      }
    });

    inferForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const { path, body } = request();
      try {
        JSON.parse(body);
      } catch (err) {
        setText(inferOut, `The body is not JSON: ${err.message}`);
        return;
      }
      setText(inferOut, 'Sending…');
      const t0 = performance.now();
      try {
        const { body: res } = await modelJson('POST', path, body, key.value);
        setText(inferOut, `${JSON.stringify(res, null, 2)}\n\n${ms(performance.now() - t0)}`);
      } catch (err) {
        setText(inferOut, `Refused: ${err.message}`);
      }
    });

    void loadModels();
    return () => running?.abort();
  },
};
