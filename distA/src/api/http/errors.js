import { ApiError, fastError, pointerToPath } from '../../core/errors.js';
/** The OpenAI `error.type` of each code. */
export const OPENAI_ERROR_TYPES = {
    invalid_request: 'invalid_request_error',
    invalid_json: 'invalid_request_error',
    body_too_large: 'invalid_request_error',
    not_found: 'invalid_request_error',
    model_not_found: 'invalid_request_error',
    version_not_found: 'invalid_request_error',
    unsupported_operation: 'invalid_request_error',
    context_length_exceeded: 'invalid_request_error',
    model_not_ready: 'server_error',
    upstream_error: 'server_error',
    upstream_unavailable: 'server_error',
    upstream_timeout: 'server_error',
    internal_error: 'server_error',
};
/** Turns anything thrown on the request path into an ApiError; unknown errors are logged here. */
export function toApiError(error, request, log) {
    if (error instanceof ApiError)
        return error;
    const e = error;
    if (Array.isArray(e.validation) && e.validation.length > 0)
        return validationError(e.validation);
    switch (e.code) {
        case 'FST_ERR_CTP_INVALID_JSON':
        case 'FST_ERR_CTP_EMPTY_JSON_BODY':
            return new ApiError('invalid_json', `the body is not valid JSON: ${e.message}`);
        case 'FST_ERR_CTP_BODY_TOO_LARGE':
            return new ApiError('body_too_large', `the body is larger than the limit of ${request.routeOptions.bodyLimit ?? 0} bytes`);
    }
    if (e instanceof SyntaxError || (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)) {
        return new ApiError('invalid_request', e.message);
    }
    log.error({ err: error, reqId: request.id, method: request.method, url: request.url }, 'internal error');
    return new ApiError('internal_error', `internal error; request id ${request.id}`);
}
/** The first failure, worded for people: a union names its accepted forms (from the schema's description). */
function validationError(errors) {
    const v = errors.find((e) => e.keyword === 'anyOf') ?? errors[0];
    let path = pointerToPath(v.instancePath);
    let message = `${v.message ?? 'is invalid'}`;
    if (v.keyword === 'anyOf')
        message = `must be ${v.parentSchema?.description ?? 'one of the accepted forms'}`;
    else if (v.keyword === 'type' ||
        v.keyword === 'minimum' ||
        v.keyword === 'maximum' ||
        v.keyword === 'minLength' ||
        v.keyword === 'minItems') {
        message = `${message}, got ${preview(v.data)}`;
    }
    const params = v.params ?? {};
    if (typeof params.missingProperty === 'string') {
        path = path === '' ? params.missingProperty : `${path}.${params.missingProperty}`;
        message = 'is required';
    }
    else if (Array.isArray(params.allowedValues)) {
        message = `must be one of ${params.allowedValues.join(', ')}`;
    }
    return new ApiError('invalid_request', `${path === '' ? 'body' : `\`${path}\``} ${message}`, path === '' ? null : path);
}
/** The 404 for a path (and method) no route serves. */
export function routeNotFound(request) {
    return fastError('not_found', `no endpoint ${request.method} ${request.url.split('?')[0]}`);
}
/** Sets the headers every model response carries: the request id and the version that served it. */
export function servedBy(request, reply, version) {
    return reply.header('x-request-id', request.id).header('x-model-version', version);
}
/** A short, safe rendering of a value for an error message (never serialises a whole structure). */
function preview(value) {
    if (Array.isArray(value))
        return `an array of ${value.length} item(s)`;
    if (value !== null && typeof value === 'object')
        return 'an object';
    const text = JSON.stringify(value) ?? String(value);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
/** `{"error": {"message", "type", "param", "code"}}`, as the OpenAI API answers. */
export function sendOpenAIError(error, request, reply) {
    const body = { error: { message: error.message, type: OPENAI_ERROR_TYPES[error.code], param: error.param, code: error.code } };
    reply.code(error.status).header('x-request-id', request.id).type('application/json').send(JSON.stringify(body));
}
/** `{"error": "..."}`, as the Open Inference Protocol answers. */
export function sendKServeError(error, request, reply) {
    reply
        .code(error.status)
        .header('x-request-id', request.id)
        .type('application/json')
        .send(JSON.stringify({ error: error.message, code: error.code }));
}
//# sourceMappingURL=errors.js.map