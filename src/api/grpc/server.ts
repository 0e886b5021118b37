/**
 * The gRPC API: KServe v2's `inference.GRPCInferenceService` and infergate's `infergate.v1.Generate`,
 * with server reflection, on the server's own gRPC transport (transport.ts). Each call goes through
 * the same gateway as HTTP: authenticate from `authorization` metadata, authorize, limit, route,
 * admit, execute, record.
 */
import type { Socket } from 'node:net';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { Logger } from 'pino';
import { fastError } from '../../core/errors.js';
import type { Gateway } from '../../pipeline/gateway.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { Tracing } from '../../telemetry/tracing.js';
import type { AccessLog } from '../../telemetry/access-log.js';
import type { TrustedHeaderConfig } from '../../config/schema.js';
import type { Directory, Principal } from '../../tenancy/directory.js';
import { Envelope } from '../envelope.js';
import { authentication } from '../trusted-header.js';
import { toApiError } from '../errors.js';
import { requestId } from '../request-id.js';
import { admitted, cancellation, failCall, GrpcContext, GrpcMethod, versionOf, type AnyMethod, type Work } from './context.js';
import { GrpcTransport, type Admit, type GrpcCall, type RequestHandler, type TransportOptions } from './transport.js';
import { chatChunks, type ChatRequestIn, type EmbedRequestIn } from './generate.js';
import { loadProtos } from './protos.js';
import { modelMetadata, modelReady } from '../kserve-models.js';
import { decodeInputs, outputTensor, rawBytes, rawOutputs, type WireTensor } from './tensors.js';

/**
 * What a GrpcServer is built from. `lifecycle.draining` makes ServerReady answer false; metrics,
 * access log and tracing are optional (absent or null: off).
 */
export interface GrpcServerOptions {
  readonly gateway: Gateway;
  readonly log: Logger;
  readonly version: string;
  /** The key directory in `keys` and `trusted_header` modes; null: no authentication. */
  readonly directory: Directory | null;
  /** In `trusted_header` mode, its settings: calls from its peers may name their tenant in metadata; absent or null: keys alone. */
  readonly trustedHeader?: TrustedHeaderConfig | null;
  /** The largest message accepted, in bytes (as `server.body_limit_bytes` for HTTP bodies). */
  readonly maxMessageBytes: number;
  /** The port's connection limits, time-outs and TLS (the `grpc` settings and `server.tls`); defaults as TransportOptions'. */
  readonly transport?: Omit<TransportOptions, 'maxMessageBytes' | 'onError'>;
  readonly lifecycle: { readonly draining: boolean };
  readonly metrics?: Metrics | null;
  readonly accessLog?: AccessLog | null;
  readonly tracing?: Tracing | null;
}

interface InferRequestIn {
  model_name?: string;
  model_version?: string;
  id?: string;
  inputs?: WireTensor[];
  outputs?: Array<{ name?: string }>;
  raw_input_contents?: Buffer[];
}

interface ModelRequestIn {
  name?: string;
  version?: string;
}

/**
 * The gRPC server: KServe v2 inference and infergate.v1.Generate, with reflection. It serves the
 * port `listen` binds or, under workers, the connections the primary hands to `adopt`.
 */
export class GrpcServer {
  readonly #transport: GrpcTransport;
  readonly #options: GrpcServerOptions;
  readonly #envelope: Envelope;

  constructor(options: GrpcServerOptions) {
    this.#options = options;
    const { log, metrics, accessLog, tracing } = options;
    const authenticate = authentication(options.directory, options.trustedHeader ?? null);
    this.#envelope = new Envelope({ log, metrics, accessLog, tracing, authenticate });
    this.#transport = new GrpcTransport({
      ...options.transport,
      maxMessageBytes: options.maxMessageBytes,
      onError: (err) => options.log.error({ err }, 'gRPC connection closed after an unexpected error'),
    });
    const definition = loadProtos();
    this.#serve(definition['inference.GRPCInferenceService'] as ServiceDefinition, this.#inference());
    this.#serve(definition['infergate.v1.Generate'] as ServiceDefinition, this.#generate());
    new ReflectionService(definition).addToServer(this.#transport);
  }

  /** Listens on `host:port` (0: any free port); resolves with the port bound. */
  listen(host: string, port: number): Promise<number> {
    return this.#transport.listen(host, port);
  }

  /** Serves a connection the cluster primary accepted; `onClose` when it ends. */
  adopt(socket: Socket, onClose: () => void): void {
    this.#transport.adopt(socket, onClose);
  }

  /** Stops taking calls and waits for those in flight, up to `timeoutMs`; then cancels what is left. */
  close(timeoutMs: number): Promise<void> {
    return this.#transport.close(timeoutMs);
  }

  #serve(service: ServiceDefinition, handlers: Record<string, RequestHandler>): void {
    const authenticate = this.#envelope.authenticate;
    // With authentication the caller is checked from the call's headers, before any of its request is
    // read: a client without a key cannot make the server hold its messages. Only the health probes are open.
    const admit: Admit | null = authenticate === null ? null : (call) => authenticate(call.headers, call);
    for (const [name, handler] of Object.entries(handlers)) {
      const method = service[name];
      if (method === undefined) throw new Error(`the proto has no method ${name}`);
      this.#transport.handle(method, handler, name === 'ServerLive' || name === 'ServerReady' ? null : admit);
    }
  }

  /** KServe v2's GRPCInferenceService: health and metadata as over HTTP (../kserve-models.ts), and ModelInfer. */
  #inference(): Record<string, RequestHandler> {
    const { gateway, version } = this.#options;
    const open = <Req, Res>(fn: (request: Req, principal: Principal | null) => Res) =>
      this.#unaryOpen<Req, Res>((request, call) => fn(request, admitted(call)));
    return {
      ServerLive: this.#unaryOpen(() => ({ live: true })),
      ServerReady: this.#unaryOpen(() => ({ ready: gateway.registry.ready() && !this.#options.lifecycle.draining })),
      ServerMetadata: open(() => ({ name: 'infergate', version, extensions: [] })),
      ModelReady: open((request: ModelRequestIn, principal) => ({
        ready: modelReady(gateway, request.name ?? '', versionOf(request.version), { principal }).ready,
      })),
      ModelMetadata: open((request: ModelRequestIn, principal) =>
        modelMetadata(gateway, request.name ?? '', versionOf(request.version), { principal }),
      ),
      ModelInfer: this.#modelCall(
        'inference.GRPCInferenceService/ModelInfer',
        (r: InferRequestIn) => r.model_version,
        async (request: InferRequestIn, ctx) => {
          const raw = request.raw_input_contents ?? [];
          const inputs = decodeInputs(request.inputs ?? [], raw);
          const outputs = request.outputs === undefined || request.outputs.length === 0 ? null : request.outputs.map((o) => o.name ?? '');
          const served = await gateway.infer(request.model_name ?? '', { inputs, outputs }, ctx);
          const tensors = served.result.outputs;
          const asRaw = rawOutputs(raw.length > 0, tensors);
          return {
            model_name: served.version.model.name,
            model_version: served.version.version,
            id: request.id ?? '',
            outputs: tensors.map((t) => outputTensor(t, asRaw)),
            raw_output_contents: asRaw ? tensors.map(rawBytes) : [],
          };
        },
      ),
    };
  }

  /** infergate.v1.Generate: Chat, streamed as it is generated, and Embed. */
  #generate(): Record<string, RequestHandler> {
    const { gateway } = this.#options;
    return {
      Chat: this.#modelCall('infergate.v1.Generate/Chat', (r: ChatRequestIn) => r.model_version, streamChat(gateway), true),
      Embed: this.#modelCall(
        'infergate.v1.Generate/Embed',
        (r: EmbedRequestIn) => r.model_version,
        async (request: EmbedRequestIn, ctx) => {
          const input = request.input ?? [];
          if (input.length === 0) throw fastError('invalid_request', 'input must hold at least one text', 'input');
          const dimensions = request.dimensions === undefined || request.dimensions === 0 ? null : request.dimensions;
          const served = await gateway.embed(request.model ?? '', { input, dimensions }, ctx);
          const tokens = served.result.promptTokens;
          return {
            model: served.version.model.name,
            model_version: served.version.version,
            data: served.result.vectors.map((v) => ({ values: Array.from(v) })),
            usage: { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens },
          };
        },
      ),
    };
  }

  /** A unary call that reaches no model (health, metadata): authenticated by `fn` where it must be; errors in gRPC's terms. */
  #unaryOpen<Req, Res>(fn: (request: Req, call: GrpcCall) => Res): RequestHandler {
    const log = this.#options.log;
    return (request, call) => {
      try {
        call.reply(fn(request as Req, call));
      } catch (err) {
        const id = requestId(call.metadata('x-request-id'));
        failCall(call, toApiError(err, { id, method: call.path }, log), id);
      }
    };
  }

  /** A model call through the envelope (../envelope.ts) and the pipeline, recorded like an HTTP one. */
  #modelCall<Req, Res>(
    name: string,
    pinnedOf: (request: Req) => string | undefined,
    work: Work<Req, Res>,
    streams = false,
  ): RequestHandler {
    const envelope = this.#envelope;
    const method: AnyMethod = new GrpcMethod(name, pinnedOf, work, streams);
    return (request, call) => void new GrpcContext(envelope, method, call, request).run();
  }
}

/** Streams a chat completion: each chunk written as it comes, the connection's flow control respected. */
function streamChat(gateway: Gateway): Work<ChatRequestIn, void> {
  return async function chat(request, ctx, call) {
    for await (const chunk of chatChunks(gateway, request, ctx)) {
      if (call.cancelled) break;
      if (ctx.firstByteAt === 0 && chunk.delta !== '') ctx.firstByteAt = performance.now();
      call.write(chunk);
      await call.drained();
    }
    if (call.cancelled) throw cancellation(call);
  };
}
