import { Worker } from 'node:worker_threads';

/**
 * A TCP proxy in front of PostgreSQL that counts the bytes crossing it, so "bytes read out of the
 * warehouse" is measured on the wire, the same way for Tailor (a subprocess we cannot instrument),
 * the full pull and the floor. It runs in a worker thread: the main thread also serves the X Ads
 * emulator, and piping hundreds of megabytes through its event loop would slow both down.
 *
 * The worker is plain JavaScript (evaluated, not loaded through tsx) so it starts in a few
 * milliseconds and needs no loader in the worker.
 */
const WORKER_SOURCE = `
const net = require('node:net');
const { workerData, parentPort } = require('node:worker_threads');
const counters = new BigInt64Array(workerData.counters);
const server = net.createServer((client) => {
  Atomics.add(counters, 2, 1n);
  const upstream = net.connect(workerData.port, workerData.host);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  upstream.on('data', (chunk) => Atomics.add(counters, 0, BigInt(chunk.length)));
  client.on('data', (chunk) => Atomics.add(counters, 1, BigInt(chunk.length)));
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', end);
  upstream.on('close', end);
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (message) => {
  if (message === 'close') server.close(() => process.exit(0));
});
`;

export interface ByteCounts {
  /** Bytes the warehouse sent to clients (rows, results, protocol). */
  fromWarehouse: number;
  /** Bytes clients sent to the warehouse (queries, parameters, COPY/INSERT data). */
  toWarehouse: number;
  connections: number;
}

export class ByteProxy {
  readonly port: number;
  #worker: Worker;
  #counters: BigInt64Array;

  private constructor(port: number, worker: Worker, counters: BigInt64Array) {
    this.port = port;
    this.#worker = worker;
    this.#counters = counters;
  }

  static async start(upstreamHost: string, upstreamPort: number): Promise<ByteProxy> {
    const shared = new SharedArrayBuffer(3 * 8);
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { counters: shared, host: upstreamHost, port: upstreamPort },
    });
    const port = await new Promise<number>((resolve, reject) => {
      worker.once('message', (message: { port: number }) => resolve(message.port));
      worker.once('error', reject);
    });
    return new ByteProxy(port, worker, new BigInt64Array(shared));
  }

  read(): ByteCounts {
    return {
      fromWarehouse: Number(Atomics.load(this.#counters, 0)),
      toWarehouse: Number(Atomics.load(this.#counters, 1)),
      connections: Number(Atomics.load(this.#counters, 2)),
    };
  }

  /** The counts since `before`. */
  since(before: ByteCounts): ByteCounts {
    const now = this.read();
    return {
      fromWarehouse: now.fromWarehouse - before.fromWarehouse,
      toWarehouse: now.toWarehouse - before.toWarehouse,
      connections: now.connections - before.connections,
    };
  }

  /** A copy of `url` that goes through the proxy. */
  wrap(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.postMessage('close');
    // Pooled connections left open by a crashed subprocess would keep `server.close` waiting.
    const timer = setTimeout(() => void this.#worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }
}
