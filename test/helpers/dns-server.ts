/**
 * A real DNS server on loopback UDP, standing in for CoreDNS or a cloud resolver: answers A, AAAA
 * and SRV queries from records the test sets (and changes between queries), with their TTLs;
 * NXDOMAIN for a name it has no records of, NOERROR with no answer for a type the name lacks,
 * SERVFAIL while `failing` is set. Packets are written by hand (RFC 1035 section 4, RFC 2782):
 * the few record types a test needs fit in a page, and no dependency is worth it.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

export interface ARecord {
  readonly address: string;
  readonly ttl: number;
}

export interface SrvRecord {
  readonly target: string;
  readonly port: number;
  readonly priority?: number;
  readonly weight?: number;
  readonly ttl: number;
}

/** The records of one name. */
export interface NameRecords {
  A?: ARecord[];
  AAAA?: ARecord[];
  SRV?: SrvRecord[];
}

export interface DnsServer {
  /** `127.0.0.1:port`, as `servers` takes it. */
  readonly address: string;
  /** Records by lower-case name without the trailing dot; change them at will. */
  readonly records: Map<string, NameRecords>;
  /** Queries answered so far. */
  queries: number;
  /** While true, every query is answered SERVFAIL. */
  failing: boolean;
  close(): Promise<void>;
}

const TYPES = { A: 1, AAAA: 28, SRV: 33 } as const;
const RCODE = { noError: 0, servFail: 2, nxDomain: 3 } as const;

/** Starts the server on 127.0.0.1, a free UDP port. */
export async function startDnsServer(): Promise<DnsServer> {
  const socket: Socket = createSocket('udp4');
  const server: DnsServer = {
    address: '',
    records: new Map(),
    queries: 0,
    failing: false,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    const answer = respond(server, msg);
    if (answer !== null) socket.send(answer, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  Object.assign(server, { address: `127.0.0.1:${socket.address().port}` });
  return server;
}

/** The answer to one query packet; null for one that cannot be read. */
function respond(server: DnsServer, query: Buffer): Buffer | null {
  if (query.length < 12) return null;
  let at = 12;
  const labels: string[] = [];
  for (;;) {
    const n = query[at] as number;
    at++;
    if (n === 0) break;
    labels.push(query.toString('latin1', at, at + n));
    at += n;
  }
  const type = query.readUInt16BE(at);
  const question = query.subarray(12, at + 4);
  server.queries++;
  const name = labels.join('.').toLowerCase();
  const records = server.records.get(name);
  const answers: Buffer[] = [];
  let rcode: number = RCODE.noError;
  if (server.failing) rcode = RCODE.servFail;
  else if (records === undefined) rcode = RCODE.nxDomain;
  else if (type === TYPES.A) for (const r of records.A ?? []) answers.push(record(TYPES.A, r.ttl, ipv4(r.address)));
  else if (type === TYPES.AAAA) for (const r of records.AAAA ?? []) answers.push(record(TYPES.AAAA, r.ttl, ipv6(r.address)));
  else if (type === TYPES.SRV) for (const r of records.SRV ?? []) answers.push(record(TYPES.SRV, r.ttl, srv(r)));
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // the query's id
  // QR (an answer), AA, the query's RD bit, RA, and the response code.
  header.writeUInt16BE(0x8000 | 0x0400 | (((query[2] as number) & 0x01) << 8) | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, question, ...answers]);
}

/** One answer record for the question's name (a pointer to it at offset 12), class IN. */
function record(type: number, ttl: number, data: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt32BE(ttl, 6);
  head.writeUInt16BE(data.length, 10);
  return Buffer.concat([head, data]);
}

function ipv4(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** SRV's data: priority, weight, port, and the target uncompressed (RFC 2782). */
function srv(r: SrvRecord): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt16BE(r.priority ?? 0, 0);
  head.writeUInt16BE(r.weight ?? 1, 2);
  head.writeUInt16BE(r.port, 4);
  const labels = r.target.split('.').filter((l) => l !== '');
  return Buffer.concat([head, ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}
