import { median } from './stats.js';

export type BenchSystem = 'tailor' | 'floor' | 'full_pull';
export type BenchWarehouseKind = 'postgres' | 'pglite' | 'bigquery';
export type CaseKind = 'initial' | 'incremental';

/** One measured run of one system on one case. */
export interface Measurement {
  warehouse: BenchWarehouseKind;
  size: number;
  kind: CaseKind;
  system: BenchSystem;
  /** 1-based repetition. */
  run: number;
  /** Tailor and the full pull: the whole process, start to exit. The floor: its SQL. */
  wallMs: number;
  /** Tailor: the run's own duration (SyncReport.durationMs, no process start); others: as wallMs. */
  engineMs: number;
  /** Rows that left the warehouse. */
  rowsRead: number;
  /** Bytes the warehouse sent on the wire (counting proxy); null where there is no wire (PGlite). */
  wireBytes: number | null;
  /** Bytes of the values the client received (full pull and floor only). */
  valueBytes: number | null;
  added: number;
  removed: number;
  changed: number;
  /** User objects and requests sent to the users endpoint (emulator request log); null for the floor. */
  userObjects: number | null;
  requests: number | null;
  maxUsersPerRequest: number | null;
  /** Peak RSS of the process that ran the sync; null for the floor (it runs inside the server). */
  peakRssBytes: number | null;
  /** CPU time (user + system) of that process; null for the floor. */
  cpuMs: number | null;
  /**
   * CPU time (user + system) of the PostgreSQL server's processes over the run (bench/server-cpu.ts);
   * null for PGlite (it runs inside the tailor process: that is in cpuMs) and when the server is not
   * measurable from here (not local, no /proc: a note says so). On BigQuery: the bqemulator process
   * (its REST layer and DuckDB). Optional only so measurements built
   * before this field existed still type-check; the benchmark always sets it.
   */
  serverCpuMs?: number | null;
  /**
   * CPU time of the benchmark process over the run (`process.cpuUsage()`: the X Ads emulator answering
   * requests and the byte-counting proxy's worker); null for the floor. Optional as serverCpuMs.
   */
  benchCpuMs?: number | null;
  /** Stopped before it finished (time ran out): figures so far, left out of the medians. */
  partial?: boolean;
  /** Anything worth keeping next to the figures (phases, warnings). */
  detail?: Record<string, unknown>;
}

export const deltaMembers = (m: Pick<Measurement, 'added' | 'removed' | 'changed'>) =>
  m.added + m.removed + m.changed;

/** Medians of one (warehouse, size, kind, system) group. */
export interface Summary {
  warehouse: BenchWarehouseKind;
  size: number;
  kind: CaseKind;
  system: BenchSystem;
  runs: number;
  wallMs: number;
  engineMs: number;
  rowsRead: number;
  wireBytes: number | null;
  valueBytes: number | null;
  deltaMembers: number;
  userObjects: number | null;
  requests: number | null;
  maxUsersPerRequest: number | null;
  /** Delta members per second of wall time. */
  membersPerSecond: number;
  peakRssBytes: number | null;
  cpuMs: number | null;
  serverCpuMs: number | null;
  benchCpuMs: number | null;
  /** The largest peak RSS over the runs (the figure the RSS target is about). */
  maxPeakRssBytes: number | null;
}

const medianOrNull = (values: Array<number | null>): number | null => {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  return present.length === 0 ? null : median(present);
};

export function summarize(measurements: readonly Measurement[]): Summary[] {
  const groups = new Map<string, Measurement[]>();
  for (const m of measurements) {
    if (m.partial) continue;
    const key = `${m.warehouse}|${m.size}|${m.kind}|${m.system}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push(m);
  }
  return [...groups.values()].map((group) => {
    const first = group[0]!;
    const rss = group.map((m) => m.peakRssBytes).filter((v): v is number => v !== null && Number.isFinite(v));
    return {
      warehouse: first.warehouse,
      size: first.size,
      kind: first.kind,
      system: first.system,
      runs: group.length,
      wallMs: median(group.map((m) => m.wallMs)),
      engineMs: median(group.map((m) => m.engineMs)),
      rowsRead: median(group.map((m) => m.rowsRead)),
      wireBytes: medianOrNull(group.map((m) => m.wireBytes)),
      valueBytes: medianOrNull(group.map((m) => m.valueBytes)),
      deltaMembers: median(group.map(deltaMembers)),
      userObjects: medianOrNull(group.map((m) => m.userObjects)),
      requests: medianOrNull(group.map((m) => m.requests)),
      maxUsersPerRequest: group.some((m) => m.maxUsersPerRequest !== null)
        ? Math.max(...group.map((m) => m.maxUsersPerRequest ?? 0))
        : null,
      membersPerSecond: median(group.map((m) => deltaMembers(m) / (m.wallMs / 1000))),
      peakRssBytes: medianOrNull(rss),
      cpuMs: medianOrNull(group.map((m) => m.cpuMs)),
      serverCpuMs: medianOrNull(group.map((m) => m.serverCpuMs ?? null)),
      benchCpuMs: medianOrNull(group.map((m) => m.benchCpuMs ?? null)),
      maxPeakRssBytes: rss.length === 0 ? null : Math.max(...rss),
    };
  });
}

export function findSummary(
  summaries: readonly Summary[],
  where: Pick<Summary, 'warehouse' | 'size' | 'kind' | 'system'>,
): Summary | undefined {
  return summaries.find(
    (s) =>
      s.warehouse === where.warehouse &&
      s.size === where.size &&
      s.kind === where.kind &&
      s.system === where.system,
  );
}
