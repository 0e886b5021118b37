/** Entry point: parses the command line and starts what it names. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { VERSION } from './cli/version.js';
import { ADMIN_HELP, AdminCliError, adminCommand } from './cli/admin.js';
import { FLEET_COMMANDS, FLEET_HELP, fleetCommand } from './cli/fleet.js';
import { ConfigError } from './config/config-error.js';
import { UsageError } from './cli/usage-error.js';
// `serve` and `config validate` are imported where they run: the config schema (TypeBox, yaml,
// every backend kind) is the largest part of what the process loads, which the admin and fleet
// commands (admin.ts and fleet.ts import nothing heavy) and --help need not. ConfigError comes
// from its own module, which imports nothing.

const HELP = `infergate ${VERSION}: a model-serving backend and gateway

Usage:
  infergate serve [--config FILE] [--host H] [--port N] [--grpc-port N] [--workers N]
      Serve the models in FILE (default: $INFERGATE_CONFIG, else config/default.yaml).
      PORT in the environment sets the port; --port wins over it. --grpc-port sets the gRPC
      port (grpc.port; 0: any free port).
  infergate config validate FILE
      Check a config file; prints each problem as FILE:LINE:COL path: message, exits 1 if any.
  infergate tenants|keys|usage ...
      Manage tenants and API keys and read usage through a running server (see below).
  infergate instances|models|weight|rollout|register ...
      See the fleet, set weights, run rollouts, register external model servers (see below).
  infergate --help | --version

${ADMIN_HELP}

${FLEET_HELP}

Docs: README.md. Config schema: config/infergate.schema.json.`;

/** The bundled default config, used when neither --config nor INFERGATE_CONFIG names one. */
function defaultConfig(): string {
  if (existsSync('config/default.yaml')) return 'config/default.yaml';
  return fileURLToPath(new URL('../../config/default.yaml', import.meta.url));
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'tenants' || argv[0] === 'keys' || argv[0] === 'usage') return adminCommand(argv);
  if (argv[0] !== undefined && FLEET_COMMANDS.has(argv[0])) return fleetCommand(argv);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
      'grpc-port': { type: 'string' },
      workers: { type: 'string', short: 'w' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  const [command, sub, arg] = positionals;
  if (values.version) return print(VERSION);
  if (values.help || command === undefined || command === 'help') return print(HELP);
  switch (command) {
    case 'serve': {
      const { serve } = await import('./cli/serve.js');
      await serve({
        configFile: values.config ?? process.env.INFERGATE_CONFIG ?? defaultConfig(),
        host: values.host,
        port: values.port === undefined ? undefined : integer('--port', values.port),
        grpcPort: values['grpc-port'] === undefined ? undefined : integer('--grpc-port', values['grpc-port']),
        workers: values.workers === undefined ? undefined : integer('--workers', values.workers),
      });
      return -1; // keeps running
    }
    case 'config': {
      const file = sub === 'validate' ? (arg ?? values.config) : undefined;
      if (file !== undefined) return (await import('./cli/config-validate.js')).validateConfig(file);
      throw new UsageError('usage: infergate config validate FILE');
    }
    default:
      throw new UsageError(`unknown command "${command}"; see infergate --help`);
  }
}

function integer(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a non-negative integer, got "${text}"`);
  return n;
}

function print(text: string): number {
  console.log(text);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    const listen = err as { code?: string; address?: string; port?: number };
    if (err instanceof ConfigError) console.error(err.message);
    else if (listen.code === 'EADDRINUSE' || listen.code === 'EACCES')
      console.error(
        `infergate: cannot listen on ${listen.address}:${listen.port}: ${listen.code === 'EADDRINUSE' ? 'another process holds the port' : 'permission denied'} ` +
          '(--port / server.port for HTTP, --grpc-port / grpc.port for gRPC)',
      );
    else if (err instanceof UsageError || err instanceof AdminCliError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      console.error(`infergate: ${(err as Error).message}`);
    else console.error(err);
    // A server that failed half-way through starting may hold handles (a database, timers) that
    // would keep the process alive; a cluster primary restarts a worker only once it exits.
    process.exit(2);
  },
);
