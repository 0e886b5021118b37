/**
 * What every transport checks of a request's tools, in the core's terms: that each function tool
 * has a valid name, description, parameters and strict flag, that a named tool choice names one
 * of the tools, that `required` has tools to call, and that the arguments of a call in the history
 * are JSON. The transport passes the field paths of its own wire format.
 */
import { randomBytes } from 'node:crypto';
import { fastError } from './errors.js';
import { isObject } from './json.js';
import type { FunctionTool, ToolChoice } from './text.js';

/** No tools: shared, read-only. */
export const NO_TOOLS: readonly FunctionTool[] = Object.freeze([]);

/** The choice with no tools to choose from. */
export const NO_TOOL_CHOICE: ToolChoice = Object.freeze({ type: 'none' });

/** The default choice where there are tools. */
export const AUTO_TOOL_CHOICE: ToolChoice = Object.freeze({ type: 'auto' });

/**
 * `choice` checked against `tools` (null: the client gave none, so `auto` with tools, `none`
 * without); throws invalid_request at `path` (the wire's tool-choice field) for a function that is
 * not among the tools, or `required` without tools.
 */
export function checkedToolChoice(tools: readonly FunctionTool[], choice: ToolChoice | null, path: string): ToolChoice {
  if (choice === null) return tools.length === 0 ? NO_TOOL_CHOICE : AUTO_TOOL_CHOICE;
  // Without tools there is nothing to call: `auto` is `none`, as the request type promises.
  if (choice.type === 'auto' && tools.length === 0) return NO_TOOL_CHOICE;
  if (choice.type === 'function' && !tools.some((t) => t.name === choice.name)) {
    throw fastError('invalid_request', `\`${path}\` names the function "${choice.name}", which is not among the tools`, path);
  }
  if (choice.type === 'required' && tools.length === 0) {
    throw fastError('invalid_request', `\`${path}\` requires a tool call, but no tools were given`, path);
  }
  return choice;
}

/** The arguments of a call in the history, as JSON text; throws invalid_request at `path` when they are not JSON. */
export function checkedArguments(text: string, path: string): string {
  try {
    JSON.parse(text);
  } catch {
    throw fastError('invalid_request', `\`${path}\` must be the call's arguments as JSON text`, path);
  }
  return text;
}

/**
 * A fresh id for a tool call whose backend gave none: `prefix_` and 24 random base64url
 * characters (`call_...` for OpenAI, `toolu_...` for Anthropic). Random, not numbered: a client
 * sends earlier turns back, and a call's id must not match another turn's.
 */
export function randomCallId(prefix: 'call' | 'toolu'): string {
  return `${prefix}_${randomBytes(18).toString('base64url')}`;
}

/** Function names as OpenAI and Anthropic both allow them: letters, digits, `_` and `-`, at most 64. */
export const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** A function tool's fields as the client sent them, unchecked; `parameters` is the JSON Schema under whatever name the wire gives it. */
export interface FunctionFields {
  readonly name: unknown;
  readonly description: unknown;
  readonly parameters: unknown;
  readonly strict: unknown;
}

/** A function tool as checked: `strict` null where the client left it out, since each wire format has its own default. */
export interface CheckedFunction extends Omit<FunctionTool, 'strict'> {
  readonly strict: boolean | null;
}

/**
 * The checks every wire format makes of a function tool, each refusal a 400 naming
 * `<path>.name`, `<path>.description`, `<path>.parameters` or `<path>.strict`: the name 1 to 64
 * letters, digits, `_` or `-`; the description a string, the parameters a JSON Schema object and
 * strict a boolean, each of them absent or null where the client gave none.
 */
export function checkedFunction(fields: FunctionFields, path: string): CheckedFunction {
  const { name, description, parameters, strict } = fields;
  if (typeof name !== 'string' || !FUNCTION_NAME.test(name)) {
    throw fastError('invalid_request', `\`${path}.name\` must be 1 to 64 letters, digits, _ or -`, `${path}.name`);
  }
  if (description !== undefined && description !== null && typeof description !== 'string') {
    throw fastError('invalid_request', `\`${path}.description\` must be a string`, `${path}.description`);
  }
  if (parameters !== undefined && parameters !== null && !isObject(parameters)) {
    throw fastError('invalid_request', `\`${path}.parameters\` must be a JSON Schema object`, `${path}.parameters`);
  }
  if (strict !== undefined && strict !== null && typeof strict !== 'boolean') {
    throw fastError('invalid_request', `\`${path}.strict\` must be true or false`, `${path}.strict`);
  }
  return { name, description: description ?? null, parameters: parameters ?? null, strict: strict ?? null };
}

/**
 * An OpenAI-style `tool_choice` (chat completions and the Responses API): "none", "auto",
 * "required", or an object of type "function" whose name `nameOf` reads (the two APIs put it in
 * different places); `shape` is that object as the 400's message spells it.
 */
export function openaiToolChoice(
  value: unknown,
  path: string,
  nameOf: (choice: Readonly<Record<string, unknown>>) => unknown,
  shape: string,
): ToolChoice {
  if (value === 'none' || value === 'auto' || value === 'required') return { type: value };
  if (isObject(value) && value.type === 'function') {
    const name = nameOf(value);
    if (typeof name === 'string') return { type: 'function', name };
  }
  throw fastError('invalid_request', `\`${path}\` must be "none", "auto", "required", or ${shape}`, path);
}
