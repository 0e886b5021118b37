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
import { ApiError, clientClosedError, fastError } from '../../core/errors.js';
import type { Gateway } from '../../pipeline/gateway.js';
import type { Metrics } from '../../telemetry/metrics.js';
import { CallRecorder } from '../../telemetry/calls.js';
import type { RequestTrace, Tracing } from '../../telemetry/tracing.js';
import type { AccessLog } from '../../telemetry/access-log.js';
import type { Directory, Principal } from '../../tenancy/directory.js';
import { presentedKey } from '../../tenancy/keys.js';
import { toApiError } from '../errors.js';
import { requestId } from '../request-id.js';
import { deadlinePassed, GrpcContext } from './context.js';
import { GRPC_STATUS, grpcError } from './errors.js';
import {
  GrpcTransport,
  Status,
  type Admit,
  type GrpcCall,
  type MetadataList,
  type RequestHandler,
  type TransportOptions,
} from './transport.js';
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
  /** The key directory in `keys` mode; null: no authentication. */
  readonly directory: Directory | null;
  /** The largest message accepted, in bytes (as `server.body_limit_bytes` for HTTP bodies). */
  readonly maxMessageBytes: number;
  /** The port's connection limits, time-outs and TLS (the `grpc` settings and `server.tls`); defaults as TransportOptions'. */
  readonly transport?: Omit<TransportOptions, 'maxMessageBytes' | 'onError'>;
  readonly lifecycle: { readonly draining: boolean };
  readonly metrics?: Metrics | null;
  readonly accessLog?: AccessLog | null;
  readonly tracing?: Tracing | null;
}

/** A model call's work: the decoded request and the call's context in, the response message out. */
type Work<Req, Res> = (request: Req, ctx: GrpcContext) => Promise<Res>;

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
 * What a call the transport cancelled came to, whatever its work then threw: past its deadline, a
 * time-out (the transport has answered DEADLINE_EXCEEDED); else the client went away (CANCELLED, 499).
 */
function cancellation(call: GrpcCall): ApiError {
  return deadlinePassed(call)
    ? fastError('upstream_timeout', 'the call passed the deadline the client set')
    : clientClosedError('the client cancelled the call');
}

/** A version named in a request: proto3's empty string means none. */
function versionOf(version: string | undefined): string | undefined {
  return version === undefined || version === '' ? undefined : version;
}

/**
 * The gRPC server: KServe v2 inference and infergate.v1.Generate, with reflection. It serves the
 * port `listen` binds or, under workers, the connections the primary hands to `adopt`.
 */
export class GrpcServer {
  readonly #transport: GrpcTransport;
  readonly #options: GrpcServerOptions;
  readonly #recorder: CallRecorder | null;

  constructor(options: GrpcServerOptions) {
    this.#options = options;
    const { metrics = null, accessLog = null, tracing = null } = options;
    this.#recorder = metrics === null && accessLog === null && tracing === null ? null : new CallRecorder(metrics, accessLog);
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
    const directory = this.#options.directory;
    // In `keys` mode the key is checked from the call's headers, before any of its request is read:
    // a client without one cannot make the server hold its messages. Only the health probes are open.
    const admit: Admit | null =
      directory === null
        ? null
        : (call) => directory.authenticate(presentedKey(call.metadata('authorization'), call.metadata('x-api-key')));
    for (const [name, handler] of Object.entries(handlers)) {
      const method = service[name];
      if (method === undefined) throw new Error(`the proto has no method ${name}`);
      this.#transport.handle(method, handler, name === 'ServerLive' || name === 'ServerReady' ? null : admit);
    }
  }

  #inference(): Record<string, RequestHandler> {
    const { gateway, version } = this.#options;
    const open = <Req, Res>(fn: (request: Req, principal: Principal | null) => Res) =>
      this.#unaryOpen<Req, Res>((request, call) => fn(request, this.#authenticate(call)));
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
      ModelInfer: this.#unaryCall(
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

  #generate(): Record<string, RequestHandler> {
    const { gateway } = this.#options;
    return {
      Chat: (request, call) => void this.#chat(request as ChatRequestIn, call),
      Embed: this.#unaryCall(
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
    return (request, call) => {
      const id = requestId(call.metadata('x-request-id'));
      try {
        call.reply(fn(request as Req, call));
      } catch (err) {
        this.#fail(call, toApiError(err, { id, method: call.path }, this.#options.log), id);
      }
    };
  }

  /** A unary model call through the pipeline, recorded like an HTTP one. */
  #unaryCall<Req, Res>(method: string, pinnedOf: (request: Req) => string | undefined, work: Work<Req, Res>): RequestHandler {
    return (request, call) => {
      const started = this.#recorder === null ? 0 : performance.now();
      const { id, trace } = this.#begin(method, call, started);
      let ctx: GrpcContext | null = null;
      void (async () => {
        try {
          ctx = this.#context(call, id, trace, started, pinnedOf(request as Req));
          const result = await work(request as Req, ctx);
          call.reply(result, this.#trailers(id, ctx));
          this.#record(id, ctx, trace, null, started);
        } catch (err) {
          const e = call.cancelled ? cancellation(call) : toApiError(err, { id, method }, this.#options.log);
          this.#fail(call, e, id);
          this.#record(id, ctx, trace, e, started);
        }
      })();
    };
  }

  /** Streams a chat completion: each chunk written as it comes, the connection's flow control respected. */
  async #chat(request: ChatRequestIn, call: GrpcCall): Promise<void> {
    const method = 'infergate.v1.Generate/Chat';
    const started = this.#recorder === null ? 0 : performance.now();
    const { id, trace } = this.#begin(method, call, started);
    let ctx: GrpcContext | null = null;
    try {
      ctx = this.#context(call, id, trace, started, request.model_version);
      const c = ctx;
      for await (const chunk of chatChunks(this.#options.gateway, request, c)) {
        if (call.cancelled) break;
        if (c.firstByteAt === 0 && chunk.delta !== '') c.firstByteAt = performance.now();
        call.write(chunk);
        await call.drained();
      }
      if (call.cancelled) throw cancellation(call);
      call.end(this.#trailers(id, c));
      this.#record(id, ctx, trace, null, started);
    } catch (err) {
      const e = call.cancelled ? cancellation(call) : toApiError(err, { id, method }, this.#options.log);
      this.#fail(call, e, id);
      this.#record(id, ctx, trace, e, started);
    }
  }

  #fail(call: GrpcCall, e: ApiError, id: string): void {
    const { code, details, metadata } = grpcError(e, id);
    call.fail(code, details, metadata);
  }

  /** The request id (the client's `x-request-id` when sane) and the call's trace, if sampled. */
  #begin(method: string, call: GrpcCall, started: number): { id: string; trace: RequestTrace | null } {
    const id = requestId(call.metadata('x-request-id'));
    const tracing = this.#options.tracing ?? null;
    const trace =
      tracing === null
        ? null
        : tracing.start(method, call.metadata('traceparent'), started, () => {
            const [service, name] = method.split('/') as [string, string];
            return { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': name, 'infergate.request_id': id };
          });
    return { id, trace };
  }

  /** Authenticates the call and makes its context. */
  #context(call: GrpcCall, id: string, trace: RequestTrace | null, started: number, pinned: string | undefined): GrpcContext {
    const principal = this.#authenticate(call);
    if (trace !== null && this.#options.directory !== null) trace.stage('authenticate', started, performance.now());
    return new GrpcContext(id, versionOf(pinned), principal, trace, call);
  }

  /** The caller's principal from `authorization: Bearer <key>` (or `x-api-key`) metadata, as checked on arrival (#serve); 401 UNAUTHENTICATED otherwise. */
  #authenticate(call: GrpcCall): Principal | null {
    if (call.refusal !== null) throw call.refusal;
    return call.admitted as Principal | null;
  }

  #trailers(id: string, ctx: GrpcContext): MetadataList {
    return ctx.version === '' ? ['x-request-id', id] : ['x-request-id', id, 'x-model-version', ctx.version];
  }

  #record(id: string, ctx: GrpcContext | null, trace: RequestTrace | null, error: ApiError | null, started: number): void {
    if (error?.limit != null) this.#options.metrics?.limited(ctx?.principal?.tenant.id ?? '', error.limit);
    const code = error === null ? Status.OK : GRPC_STATUS[error.code];
    this.#recorder?.finished(id, ctx, trace, error?.status ?? 200, error?.code ?? '', started, { 'rpc.grpc.status_code': code });
  }
}
