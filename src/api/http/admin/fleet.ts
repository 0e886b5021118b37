/**
 * The fleet's admin API, under /admin (guarded by the admin key): the registry of replicas and
 * external model servers, each model's versions with their weights in force and where they come
 * from, cluster-wide weight overrides (answered once every live replica applied them), and
 * rollouts with a person's pause, resume, abort and promote.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Fleet, RolloutAction } from '../../../cluster/fleet.js';
import { publicRollout } from '../../../cluster/fleet.js';
import { rolloutPlanProblems } from '../../../config/rollout-plan.js';
import { RolloutPlanSchema, type RolloutPlan } from '../../../config/schema.js';
import { fastError } from '../../../core/errors.js';
import type { Gateway } from '../../../pipeline/gateway.js';
import { versionHealth, type Model } from '../../../routing/registry.js';
import { adminValidatorCompiler } from './validation.js';

const strict = { additionalProperties: false } as const;
const By = Type.Optional(
  Type.String({ minLength: 1, maxLength: 128, description: 'Who makes the change (shown with it); default admin@<address>.' }),
);

const SetWeight = Type.Object(
  {
    weight: Type.Number({ minimum: 0, maximum: 1_000_000, description: 'Share of unpinned traffic, relative to the other versions.' }),
    by: By,
  },
  strict,
);
const Register = Type.Object(
  {
    id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' })),
    url: Type.String({ pattern: '^https?://', maxLength: 2048, description: "The server's base URL, e.g. http://10.0.0.7:8000." }),
    grpc: Type.Optional(Type.String({ maxLength: 512 })),
    models: Type.Array(
      Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 256 }),
          version: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Default 1.' })),
        },
        strict,
      ),
      { minItems: 1, maxItems: 1000 },
    ),
    labels: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,63}$' }), Type.String({ maxLength: 256 }), strict)),
    ttl_seconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 86_400, description: 'Gone this long after the last registration; default 30.' }),
    ),
  },
  strict,
);
/** The plan as a body: like `rollout:` in the config, every field but `version` may be left out (the defaults fill it). */
const { version: PlanVersion, gates: PlanGates, ...planRest } = RolloutPlanSchema.properties;
const Plan = Type.Object(
  {
    version: PlanVersion,
    ...Object.fromEntries(Object.entries(planRest).map(([k, v]) => [k, Type.Optional(v)])),
    gates: Type.Optional(Type.Partial(PlanGates)),
    by: By,
  },
  strict,
);

/** A person's action on a rollout: no body, or who takes it. */
const Action = Type.Union([Type.Null(), Type.Object({ by: By }, strict)]);

interface ModelParams {
  name: string;
}
interface VersionParams extends ModelParams {
  version: string;
}
interface RolloutParams extends ModelParams {
  id: string;
  action: string;
}

const ACTIONS: ReadonlySet<string> = new Set(['pause', 'resume', 'abort', 'promote']);

/** Who a change is by: the body's `by`, else the admin at the caller's address. */
function actor(by: string | undefined, request: FastifyRequest): string {
  return by ?? `admin@${request.ip}`;
}

/** The fleet routes as a Fastify plugin. */
export function adminFleetRoutes(fleet: Fleet, gateway: Gateway) {
  const model = (name: string): Model => gateway.registry.get(name);
  const version = (m: Model, v: string): void => {
    if (!m.versions.has(v)) m.select(v); // throws version_not_found, naming the versions there are
  };

  /** One model as GET /admin/models shows it. */
  const view = async (m: Model, sources: Awaited<ReturnType<Fleet['weightSources']>>) => {
    const overrides = sources.get(m.name);
    const rollout = fleet.rollouts().get(m.name);
    return {
      name: m.name,
      aliases: m.aliases,
      default_version: m.defaultVersion.version,
      versions: [...m.versions.values()].map((v) => {
        const o = overrides?.get(v.version);
        return {
          version: v.version,
          backend: v.kind,
          weight: m.weightOf(v.version),
          config_weight: v.weight,
          weight_source: o === undefined ? { from: 'config' } : { from: 'override', by: o.by, at: new Date(o.at).toISOString() },
          ready: versionHealth(v).ready,
          breaker: v.governor?.status()?.state ?? null,
          replicas: fleet.replicasOf(m.name, v.version),
        };
      }),
      rollout: rollout === undefined ? null : publicRollout(rollout),
    };
  };

  return async function fleetRoutes(app: FastifyInstance): Promise<void> {
    app.setValidatorCompiler(adminValidatorCompiler());

    app.get('/instances', async () => ({ store: fleet.storeKind, self: fleet.instance, data: await fleet.instances() }));

    app.post<{ Body: Static<typeof Register> }>('/instances', { schema: { body: Register } }, async (request, reply) => {
      const b = request.body;
      if (!URL.canParse(b.url)) throw fastError('invalid_request', `\`url\` is not a URL: ${JSON.stringify(b.url.slice(0, 100))}`, 'url');
      const id = b.id ?? new URL(b.url).host;
      const record = await fleet.register({
        id,
        url: b.url,
        grpc: b.grpc ?? null,
        labels: b.labels ?? {},
        models: b.models.map((m) => ({ name: m.name, version: m.version ?? '1' })),
        ttl_ms: (b.ttl_seconds ?? 30) * 1000,
      });
      return reply.code(201).send(record);
    });

    app.delete<{ Params: { id: string } }>('/instances/:id', async (request, reply) => {
      if (!(await fleet.deregister(request.params.id))) {
        throw fastError('not_found', `no external instance "${request.params.id.slice(0, 80)}" (replicas leave by shutting down)`);
      }
      return reply.code(204).send();
    });

    app.get('/models', async () => {
      const sources = await fleet.weightSources();
      return { data: await Promise.all(gateway.registry.models.map((m) => view(m, sources))) };
    });

    app.get<{ Params: ModelParams }>('/models/:name', async (request) => view(model(request.params.name), await fleet.weightSources()));

    app.patch<{ Params: VersionParams; Body: Static<typeof SetWeight> }>(
      '/models/:name/versions/:version',
      { schema: { body: SetWeight } },
      async (request) => {
        const m = model(request.params.name);
        version(m, request.params.version);
        const { override, unconfirmed } = await fleet.setWeight(
          m,
          request.params.version,
          request.body.weight,
          actor(request.body.by, request),
        );
        return {
          model: m.name,
          version: request.params.version,
          weight: m.weightOf(request.params.version),
          override,
          unconfirmed_replicas: unconfirmed,
        };
      },
    );

    app.delete<{ Params: VersionParams }>('/models/:name/versions/:version/weight', async (request) => {
      const m = model(request.params.name);
      version(m, request.params.version);
      const { unconfirmed } = await fleet.setWeight(m, request.params.version, null, actor(undefined, request));
      return {
        model: m.name,
        version: request.params.version,
        weight: m.weightOf(request.params.version),
        override: null,
        unconfirmed_replicas: unconfirmed,
      };
    });

    app.post<{ Params: ModelParams; Body: Static<typeof Plan> }>(
      '/models/:name/rollouts',
      { schema: { body: Plan } },
      async (request, reply) => {
        const m = model(request.params.name);
        const { by, ...body } = request.body;
        const plan = Value.Default(RolloutPlanSchema, structuredClone(body)) as RolloutPlan;
        const problem = rolloutPlanProblems(plan, [...m.versions.keys()])[0];
        if (problem !== undefined)
          throw fastError('invalid_request', `${problem.path.join('.')}: ${problem.message}`, problem.path.join('.'));
        const record = await fleet.startRollout(m, plan, actor(by, request));
        return reply.code(201).send(publicRollout(record));
      },
    );

    const actionBody = { schema: { body: Action } };
    app.post<{ Params: RolloutParams; Body: Static<typeof Action> }>('/models/:name/rollouts/:id/:action', actionBody, async (request) => {
      const { action, id } = request.params;
      if (!ACTIONS.has(action)) throw fastError('not_found', `no rollout action "${action.slice(0, 40)}": pause, resume, abort or promote`);
      const by = request.body?.by;
      return publicRollout(await fleet.act(model(request.params.name), id, action as RolloutAction, actor(by, request)));
    });
  };
}
