/** When tracing is on and how it samples, from the config and the standard OTEL_* environment. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tracingSettings } from '../../src/telemetry/tracing-settings.js';

const config = { enabled: true, sample_ratio: 0.25 };

describe('tracing settings', () => {
  it('is off unless an OTLP endpoint is named', () => {
    assert.equal(tracingSettings(config, {}), null);
    assert.equal(tracingSettings(config, { OTEL_EXPORTER_OTLP_ENDPOINT: '' }), null);
    assert.deepEqual(tracingSettings(config, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), {
      sampleRatio: 0.25,
      serviceName: 'infergate',
      protocol: 'http/protobuf',
    });
    assert.notEqual(tracingSettings(config, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }), null);
  });

  it('stays off when the config, OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none says so', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    assert.equal(tracingSettings({ ...config, enabled: false }, env), null);
    assert.equal(tracingSettings(config, { ...env, OTEL_SDK_DISABLED: 'true' }), null);
    assert.equal(tracingSettings(config, { ...env, OTEL_TRACES_EXPORTER: 'none' }), null);
  });

  it('takes the sampler and service name from the environment over the config', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SERVICE_NAME: 'edge' };
    assert.deepEqual(tracingSettings(config, { ...env, OTEL_TRACES_SAMPLER_ARG: '0.01' }), {
      sampleRatio: 0.01,
      serviceName: 'edge',
      protocol: 'http/protobuf',
    });
    assert.equal(tracingSettings(config, { ...env, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })?.protocol, 'http/json');
    assert.equal(tracingSettings(config, { ...env, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' })?.protocol, 'http/json');
    assert.equal(tracingSettings(config, { ...env, OTEL_TRACES_SAMPLER: 'always_off' })?.sampleRatio, 0);
    assert.equal(tracingSettings(config, { ...env, OTEL_TRACES_SAMPLER: 'parentbased_always_on' })?.sampleRatio, 1);
    assert.equal(tracingSettings(config, { ...env, OTEL_TRACES_SAMPLER_ARG: 'lots' })?.sampleRatio, 0.25, 'a bad ratio is ignored');
  });
});
