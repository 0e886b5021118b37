/**
 * The options of a model file that every in-process kind (onnx, llama) shares, as TypeBox
 * schemas: its checksum and where a downloaded file is kept (see model-file.ts).
 */
import { Type } from '@sinclair/typebox';

/** `sha256`: the file's checksum, checked before the model loads. */
export const Sha256Option = Type.String({
  pattern: '^[0-9a-f]{64}$',
  description:
    'SHA-256 of the file (64 lowercase hex digits, as `sha256sum` prints it), checked before the model loads; ' +
    'a mismatch fails the load and the version is not ready. Default: not checked.',
});

/** `cache_dir`: where a `path` URL is downloaded to. */
export const CacheDirOption = Type.String({
  minLength: 1,
  default: 'data/model-cache',
  description:
    'Where a `path` URL is downloaded to, relative to the working directory; a cached copy (with `sha256`: one that matches) ' +
    'is used without downloading again. Example: /var/cache/infergate.',
});
