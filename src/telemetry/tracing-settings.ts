/**
 * Whether and how to trace, from the config and the standard OTEL_* environment. Apart from the
 * tracer itself, so a server that does not trace never loads the OpenTelemetry SDK (about 130 ms
 * and 20 MiB per worker at start).
 */
import type { TracingConfig } from '../config/schema.js';

/** How tracing runs: where it exports is the exporter's to read from the environment. */
export interface TracingSettings {
  /** Share of requests without a parent decision that are traced. */
  readonly sampleRatio: number;
  readonly serviceName: string;
  /** OTLP over HTTP with protobuf bodies (the OTel default) or JSON. */
  readonly protocol: 'http/protobuf' | 'http/json';
}

/**
 * Tracing as the config and the standard environment ask: on when an OTLP endpoint is named
 * (and neither OTEL_SDK_DISABLED nor OTEL_TRACES_EXPORTER=none says otherwise); null: off.
 */
export function tracingSettings(config: TracingConfig, env: NodeJS.ProcessEnv = process.env): TracingSettings | null {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!config.enabled || !endpoint || env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return null;
  // OTLP over gRPC is not offered: its exporter would add a second gRPC stack; the collector's HTTP port takes the same data.
  const protocol =
    (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL) === 'http/json' ? 'http/json' : 'http/protobuf';
  return { sampleRatio: samplerRatio(config.sample_ratio, env), serviceName: env.OTEL_SERVICE_NAME || 'infergate', protocol };
}

/** The root sampling ratio: OTEL_TRACES_SAMPLER(_ARG) where set, else the config's. */
function samplerRatio(configured: number, env: NodeJS.ProcessEnv): number {
  const sampler = env.OTEL_TRACES_SAMPLER;
  if (sampler === 'always_off' || sampler === 'parentbased_always_off') return 0;
  if (sampler === 'always_on' || sampler === 'parentbased_always_on') return 1;
  const arg = Number(env.OTEL_TRACES_SAMPLER_ARG);
  return env.OTEL_TRACES_SAMPLER_ARG !== undefined && arg >= 0 && arg <= 1 ? arg : configured;
}
