/** A mistake on the command line or in the environment: printed as one line (`infergate: ...`), exit 2, no stack trace. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
