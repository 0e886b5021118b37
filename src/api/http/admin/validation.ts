/**
 * Admin bodies checked against their TypeBox schemas, each refusal worded for people with the
 * field it is about as `param`: Fastify's default is Ajv's raw text ("body/priority must be equal
 * to constant", once per branch of the union) with `param: null`.
 */
import { Ajv, type ErrorObject } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import { ApiError, pointerToPath } from '../../../core/errors.js';
import { preview } from '../../errors.js';

/**
 * A Fastify validator compiler for the admin routes: bodies are checked as sent (no coercion, no
 * defaults, unknown fields refused by the schemas), and the first problem becomes a 400
 * `invalid_request` naming its field. Schemas are compiled once, when the routes are registered.
 */
export function adminValidatorCompiler(): FastifySchemaCompiler<unknown> {
  // `verbose` keeps the failing value and schema on each error, for "got ..." and the accepted fields.
  const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, verbose: true, strict: false });
  return function compileAdminSchema({ schema }) {
    const validate = ajv.compile(schema as object);
    return function validateAdminBody(data: unknown) {
      return validate(data) ? true : { error: schemaProblem(validate.errors ?? []) };
    };
  };
}

/** One problem, in words, from Ajv's errors (one error, or a failed union and its branches' errors). */
export function schemaProblem(errors: readonly ErrorObject[]): ApiError {
  const last = errors.at(-1);
  if (last === undefined) return new ApiError('invalid_request', 'the body is invalid');
  if (last.keyword !== 'anyOf') return describe(last);
  // A union: its branches' errors come first, each under `<anyOf's schemaPath>/<branch>/`.
  const branches = new Map<string, ErrorObject[]>();
  const prefix = `${last.schemaPath}/`;
  for (const e of errors.slice(0, -1)) {
    if (!e.schemaPath.startsWith(prefix)) continue;
    const branch = e.schemaPath.slice(prefix.length).split('/')[0] as string;
    branches.set(branch, [...(branches.get(branch) ?? []), e]);
  }
  // A branch the value got into (its type or constant matched, something inside did not) says more.
  for (const branchErrors of branches.values()) {
    if (!branchErrors.every((e) => atTheDoor(e, last.instancePath))) return schemaProblem(branchErrors);
  }
  const accepted = [...branches.values()].map((b) => alternative(b[0] as ErrorObject));
  const only = accepted.every((a) => a.startsWith('"'));
  const list = only ? accepted.map((a) => a.slice(1, -1)).join(', ') : accepted.join(' or ');
  return problem(last, `must be ${only ? 'one of ' : ''}${list}, got ${preview(last.data)}`);
}

/** An error about the value as a whole (its type or constant), not about something inside it. */
function atTheDoor(e: ErrorObject, instancePath: string): boolean {
  return e.instancePath === instancePath && (e.keyword === 'type' || e.keyword === 'const' || e.keyword === 'enum');
}

/** What a union branch that refused a value at the door accepts: `"high"`, `an object`, `null`. */
function alternative(e: ErrorObject): string {
  if (e.keyword === 'const') return JSON.stringify(e.params.allowedValue);
  if (e.keyword === 'enum') return (e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(' or ');
  return typeName(String(e.params.type));
}

function describe(e: ErrorObject): ApiError {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = join(e.instancePath, String(p.additionalProperty));
      const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const hint = known.length === 0 ? '' : `; the fields are ${known.join(', ')}`;
      return new ApiError('invalid_request', `unknown field \`${field}\`${hint}`, field);
    }
    case 'required': {
      const field = join(e.instancePath, String(p.missingProperty));
      return new ApiError('invalid_request', `\`${field}\` is required`, field);
    }
    case 'type':
      return problem(e, `must be ${typeName(String(p.type))}, got ${preview(e.data)}`);
    case 'const':
    case 'enum':
      return problem(e, `must be ${alternative(e)}, got ${preview(e.data)}`);
    case 'pattern': {
      const description = (e.parentSchema as { description?: string } | undefined)?.description;
      return problem(e, `must match ${String(p.pattern)}${description === undefined ? '' : ` (${description})`}, got ${preview(e.data)}`);
    }
    default:
      // minimum, maxLength, maxItems, ...: Ajv's wording is clear ("must be >= 0").
      return problem(e, `${e.message ?? 'is invalid'}, got ${preview(e.data)}`);
  }
}

/** The ApiError for a problem with the value at `e.instancePath`; the body itself has no `param`. */
function problem(e: ErrorObject, message: string): ApiError {
  const path = pointerToPath(e.instancePath);
  return new ApiError('invalid_request', `${path === '' ? 'the body' : `\`${path}\``} ${message}`, path === '' ? null : path);
}

function join(pointer: string, field: string): string {
  const path = pointerToPath(pointer);
  return path === '' ? field : `${path}.${field}`;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  null: 'null',
};

function typeName(type: string): string {
  return TYPE_NAMES[type] ?? type;
}
