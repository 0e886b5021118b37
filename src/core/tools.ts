/**
 * What every transport checks of a request's tools, in the core's terms: that a named tool
 * choice names one of the tools, that `required` has tools to call, and that the arguments of a
 * call in the history are JSON. The transport passes the field paths of its own wire format.
 */
import { fastError } from './errors.js';
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
