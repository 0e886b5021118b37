/**
 * The admin API for tenants, keys and usage, under /admin (guarded by the admin key, see
 * server.ts). Bodies are checked against TypeBox schemas; unknown fields are errors, not dropped, and
 * each refusal names its field (validation.ts).
 * A change answers once every live process applies it; its answer carries `unconfirmed_replicas`,
 * the processes that did not confirm within `state.change_ack_timeout_ms` (empty: none).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { LimitsSchema } from '../../../config/schema.js';
import { fastError } from '../../../core/errors.js';
import type { Applied, TenantAdmin } from '../../../tenancy/admin.js';
import type { Ledger } from '../../../tenancy/ledger.js';
import type { UsageStore } from '../../../store/usage.js';
import { usageQuery } from './usage-query.js';
import { adminValidatorCompiler } from './validation.js';

const Priority = Type.Union([Type.Literal('high'), Type.Literal('normal'), Type.Literal('low')], {
  description: "Admission priority class of the tenant's calls.",
});
const Models = Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
  maxItems: 1000,
  description: 'Model names or aliases the tenant may use; `*` matches any run of characters ("*" alone: every model).',
});
const TENANT_ID = '^[a-z0-9][a-z0-9_.-]{0,63}$';

const CreateTenant = Type.Object(
  {
    id: Type.String({ pattern: TENANT_ID, description: 'Lower-case letters, digits, `_ . -`; at most 64.' }),
    models: Models,
    priority: Type.Optional(Priority),
    limits: Type.Optional(LimitsSchema),
  },
  { additionalProperties: false },
);
const UpdateTenant = Type.Object(
  { models: Type.Optional(Models), priority: Type.Optional(Priority), limits: Type.Optional(LimitsSchema) },
  { additionalProperties: false },
);
const CreateKey = Type.Object(
  { name: Type.Optional(Type.String({ maxLength: 128 })), limits: Type.Optional(LimitsSchema) },
  { additionalProperties: false },
);
interface TenantParams {
  tenant: string;
}
interface KeyParams {
  key: string;
}

function notFound(what: string, id: string): never {
  throw fastError('not_found', `no ${what} "${id.slice(0, 80)}"`);
}

/** A change's answer: what it made, and the processes that did not confirm they apply it. */
function answer<T extends object>(applied: Applied<T>): T & { unconfirmed_replicas: readonly string[] } {
  return { ...applied.result, unconfirmed_replicas: applied.unconfirmed };
}

/** The tenant, key and usage routes as a Fastify plugin; `ledger` (null: usage off) is flushed before each /usage answer. */
export function adminTenantRoutes(admin: TenantAdmin, usage: UsageStore, ledger: Ledger | null) {
  return async function tenants(app: FastifyInstance): Promise<void> {
    app.setValidatorCompiler(adminValidatorCompiler());
    app.get('/tenants', async () => ({ data: await admin.store.list() }));

    app.post<{ Body: Static<typeof CreateTenant> }>(
      '/tenants',
      { schema: { body: CreateTenant } },
      async (request, reply: FastifyReply) => {
        const { id, models, priority = 'normal', limits = {} } = request.body;
        const tenant = await admin.createTenant(id, { models, priority, limits });
        if (tenant === null) throw fastError('invalid_request', `tenant "${id}" already exists`, 'id');
        return reply.code(201).send(answer(tenant));
      },
    );

    app.get<{ Params: TenantParams }>('/tenants/:tenant', async (request) => {
      return (await admin.store.get(request.params.tenant)) ?? notFound('tenant', request.params.tenant);
    });

    app.patch<{ Params: TenantParams; Body: Static<typeof UpdateTenant> }>(
      '/tenants/:tenant',
      { schema: { body: UpdateTenant } },
      async (request) => {
        const tenant = await admin.updateTenant(request.params.tenant, request.body);
        return tenant === null ? notFound('tenant', request.params.tenant) : answer(tenant);
      },
    );

    // 204 once every process applies it; else 200 with the ones that did not confirm.
    app.delete<{ Params: TenantParams }>('/tenants/:tenant', async (request, reply) => {
      const deleted = await admin.deleteTenant(request.params.tenant);
      if (deleted === null) notFound('tenant', request.params.tenant);
      if (deleted.unconfirmed.length === 0) return reply.code(204).send();
      return { id: deleted.result, deleted: true, unconfirmed_replicas: deleted.unconfirmed };
    });

    app.get<{ Params: TenantParams }>('/tenants/:tenant/keys', async (request) => {
      if ((await admin.store.get(request.params.tenant)) === null) notFound('tenant', request.params.tenant);
      return { data: await admin.store.keys(request.params.tenant) };
    });

    app.post<{ Params: TenantParams; Body: Static<typeof CreateKey> | undefined }>(
      '/tenants/:tenant/keys',
      { schema: { body: Type.Union([CreateKey, Type.Null()]) } },
      async (request, reply) => {
        const body = request.body ?? {};
        const key = await admin.createKey(request.params.tenant, body.name ?? 'default', body.limits ?? {});
        return key === null ? notFound('tenant', request.params.tenant) : reply.code(201).send(answer(key));
      },
    );

    app.delete<{ Params: KeyParams }>('/keys/:key', async (request) => {
      const key = await admin.revokeKey(request.params.key);
      return key === null ? notFound('live key', request.params.key) : answer(key);
    });

    app.post<{ Params: KeyParams }>('/keys/:key/rotate', async (request, reply) => {
      const key = await admin.rotateKey(request.params.key);
      return key === null ? notFound('live key', request.params.key) : reply.code(201).send(answer(key));
    });

    app.get<{ Querystring: Record<string, string | undefined> }>('/usage', async (request) => {
      const query = usageQuery(request.query, request.query.tenant ?? null);
      await ledger?.flush(); // this process's buffered records count too
      return { object: 'usage', from: query.from, to: query.to, group_by: query.groupBy, data: await usage.aggregate(query) };
    });
  };
}
