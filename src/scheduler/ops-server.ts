import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { SchedulerMetrics } from './metrics.js';

/** What `/healthz` reports: 200 while running, 503 while starting and once shutting down. */
export interface HealthReport {
  status: 'ok' | 'starting' | 'shutting_down';
  uptimeSeconds: number;
  activations: {
    id: string;
    schedule: string;
    nextRunAt: string | null;
    paused: boolean;
    running: boolean;
  }[];
  inFlight: { activation: string; startedAt: string }[];
}

export interface OpsServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The daemon's operations listener: `/healthz` (JSON) and `/metrics` (Prometheus text). It binds to
 * loopback unless told otherwise, since metrics name activations and timings.
 */
export async function startOpsServer(options: {
  host: string;
  port: number;
  metrics: SchedulerMetrics;
  health: () => HealthReport;
  logger: Logger;
}): Promise<OpsServer> {
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const report = options.health();
      const body = `${JSON.stringify(report)}\n`;
      response
        .writeHead(report.status === 'ok' ? 200 : 503, {
          'content-type': 'application/json; charset=utf-8',
          'cache-control': 'no-store',
        })
        .end(request.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === '/metrics') {
      options.metrics.metrics().then(
        (text) => {
          response
            .writeHead(200, { 'content-type': options.metrics.contentType })
            .end(request.method === 'HEAD' ? undefined : text);
        },
        (error: unknown) => {
          options.logger.error({ err: error }, 'metrics collection failed');
          response.writeHead(500).end();
        },
      );
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
  });
  // A scrape left open must not keep the daemon from exiting.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    }));
  return { url, port: address.port, close, [Symbol.asyncDispose]: close };
}
