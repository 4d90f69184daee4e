/** Small HTTP helpers shared by the API and admin handlers. */
import type { IncomingMessage } from 'node:http';

export interface ApiError {
  code: string;
  message: string;
  parameter?: string;
}

export interface EmulatorResponse {
  status: number;
  /** JSON body (serialized with `application/json; charset=utf-8`). */
  json?: unknown;
  /** Raw text body (for the HTML 502 an edge proxy sends). */
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
  /** Destroy the socket without answering. */
  drop?: boolean;
}

export type Params = Record<string, unknown>;

export function errorResponse(
  status: number,
  errors: ApiError[],
  params: Params = {},
  headers?: Record<string, string>,
): EmulatorResponse {
  return { status, json: { errors, request: { params } }, ...(headers ? { headers } : {}) };
}

export function singleError(
  status: number,
  code: string,
  message: string,
  params: Params = {},
  parameter?: string,
): EmulatorResponse {
  return errorResponse(status, [{ code, message, ...(parameter ? { parameter } : {}) }], params);
}

export interface ReadBody {
  /** The bytes kept (at most `keep` + 1 bytes; the rest is counted and dropped). */
  body: Buffer;
  /** Bytes actually received. */
  bytes: number;
}

/** Reads the whole request, keeping at most `keep + 1` bytes in memory but counting them all. */
export function readBody(req: IncomingMessage, keep: number): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (kept <= keep) {
        const take = chunk.subarray(0, keep + 1 - kept);
        chunks.push(take);
        kept += take.length;
      }
    });
    req.on('end', () => resolve({ body: Buffer.concat(chunks), bytes }));
    req.on('error', reject);
  });
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
