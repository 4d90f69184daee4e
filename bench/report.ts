import type { BenchOptions } from './args.js';
import type { MachineInfo } from './machine.js';
import {
  type BenchWarehouseKind,
  findSummary,
  type Measurement,
  type Summary,
  summarize,
} from './results.js';
import { formatBytes, formatCount, formatDuration, formatRatio, median } from './stats.js';

/**
 * The targets, each a ratio against the floor or the full pull measured in the same run (so a
 * loaded machine slows both sides), checked against the medians:
 *
 * - P1: an incremental sync within 1.5 × the floor (the raw FULL OUTER JOIN diff, its delta
 *   streamed out, and one MERGE into state) + 0.5 s on PostgreSQL; the same ratio reported on PGlite.
 * - P2: the incremental sync ≥ 5× faster than the full-pull design, the first load ≥ 2× faster.
 * - P3: the first load within 3 × the same first load done in SQL (the floor's initial case) at
 *   every size; Tailor's peak RSS ≤ 300 MB (every run) and, for the first load P3 is about, flat
 *   from the smallest size to the largest. An incremental run's delta is a share of the segment
 *   (30,000 members at 1M, 150,000 at 5M), so its peak is shown beside them but not held flat: it
 *   follows how many batches the run sends until the pipeline's bound is reached.
 */
export const TARGETS = {
  incrementalFloorFactor: 1.5,
  incrementalFloorSlackMs: 500,
  incrementalFullPullSpeedup: 5,
  initialFullPullSpeedup: 2,
  initialFloorFactor: 3,
  peakRssBytes: 300 * 1024 * 1024,
  /** "Flat": the larger size's peak within this factor of the smaller's. */
  rssFlatFactor: 1.2,
  oneRequestDelta: 10_000,
} as const;

export type TargetStatus = 'met' | 'not met' | 'not measured' | 'reported';

export interface TargetCheck {
  target: string;
  status: TargetStatus;
  evidence: string;
}

const REFERENCE_SIZE = 1_000_000;

/** The size the "at 1M" targets are judged at: 1M when measured, else the nearest measured size. */
function referenceSize(sizes: readonly number[]): number {
  return [...sizes].sort((a, b) => Math.abs(a - REFERENCE_SIZE) - Math.abs(b - REFERENCE_SIZE))[0]!;
}

const at = (size: number) =>
  size === REFERENCE_SIZE ? 'at 1M' : `at ${formatCount(size)} rows (1M not run)`;

type System = 'tailor' | 'floor' | 'full_pull';

/**
 * The CPU the whole machine spent on one Tailor run (medians): the tailor process, the PostgreSQL
 * server (on BigQuery: the bqemulator process) and the benchmark process (emulator + proxy). Null
 * when one of them was not measured; on PGlite the server is the tailor process, so its part is
 * already in the tailor figure.
 */
export function machineCpu(
  s: Summary,
): { tailorMs: number; serverMs: number | null; emulatorMs: number; totalMs: number } | null {
  if (s.cpuMs === null || s.benchCpuMs === null) return null;
  const separateServer = s.warehouse !== 'pglite';
  if (separateServer && s.serverCpuMs === null) return null;
  const serverMs = separateServer ? s.serverCpuMs : null;
  return {
    tailorMs: s.cpuMs,
    serverMs,
    emulatorMs: s.benchCpuMs,
    totalMs: s.cpuMs + (serverMs ?? 0) + s.benchCpuMs,
  };
}

/** `machine CPU: tailor X + server Y + emulator Z = T; on N cores at least T/N of wall time`. */
export function machineCpuLine(s: Summary, cores: number): string {
  const cpu = machineCpu(s);
  if (!cpu) return '';
  const parts =
    cpu.serverMs === null
      ? `tailor ${formatDuration(cpu.tailorMs)} (PGlite inside it)`
      : `tailor ${formatDuration(cpu.tailorMs)} + ${s.warehouse === 'bigquery' ? 'bqemulator' : 'server'} ${formatDuration(cpu.serverMs)}`;
  return (
    `machine CPU: ${parts} + emulator ${formatDuration(cpu.emulatorMs)} = ${formatDuration(cpu.totalMs)}; ` +
    `on ${cores} cores at least ${formatDuration(cpu.totalMs / cores)} of wall time`
  );
}

/** `; machine-bound: ... = X s` for a target not met, when every CPU figure of Tailor's run exists. */
function machineBound(tailor: Array<{ size: number; summary: Summary }>, cores: number | undefined): string {
  if (cores === undefined) return '';
  const bounds = tailor
    .map(({ size, summary }) => ({ size, cpu: machineCpu(summary) }))
    .filter((b) => b.cpu !== null);
  if (bounds.length === 0) return '';
  return (
    '; machine-bound: (tailor + server + emulator CPU)/cores = ' +
    bounds
      .map(
        (b) =>
          formatDuration(b.cpu!.totalMs / cores) +
          (tailor.length > 1 ? ` at ${formatCount(b.size)} rows` : ''),
      )
      .join(', ')
  );
}

/**
 * The verdicts. `cores` (the machine's) adds, to a P1 or P3 first-load target not met, the least
 * wall time the CPU that Tailor's run cost the whole machine takes on it.
 */
export function checkTargets(
  summaries: readonly Summary[],
  sizes: readonly number[],
  cores?: number,
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ref = referenceSize(sizes);
  const get = (
    size: number,
    kind: 'initial' | 'incremental',
    system: System,
    warehouse: 'postgres' | 'pglite' = 'postgres',
  ) => findSummary(summaries, { warehouse, size, kind, system });

  const p1 = (warehouse: 'postgres' | 'pglite', size: number | undefined) => {
    const label = warehouse === 'postgres' ? 'PostgreSQL' : 'PGlite (reported)';
    const target = `P1 (${label}): incremental sync ≤ ${TARGETS.incrementalFloorFactor} × floor (FULL OUTER JOIN diff + MERGE) + ${TARGETS.incrementalFloorSlackMs / 1000} s`;
    const tailor = size === undefined ? undefined : get(size, 'incremental', 'tailor', warehouse);
    const floor = size === undefined ? undefined : get(size, 'incremental', 'floor', warehouse);
    if (!tailor || !floor || size === undefined) {
      checks.push({ target, status: 'not measured', evidence: '' });
      return;
    }
    const bound = TARGETS.incrementalFloorFactor * floor.wallMs + TARGETS.incrementalFloorSlackMs;
    const met = tailor.wallMs <= bound;
    checks.push({
      target,
      status: warehouse === 'postgres' ? (met ? 'met' : 'not met') : 'reported',
      evidence:
        `${at(size)}: \`tailor sync\` ${formatDuration(tailor.wallMs)} (process, start to exit; the run itself ` +
        `${formatDuration(tailor.engineMs)}) vs bound ${formatDuration(bound)} (floor ${formatDuration(floor.wallMs)}); ` +
        `tailor/floor ${formatRatio(tailor.wallMs / floor.wallMs)}; ${met ? 'within' : 'over'} the bound` +
        (met ? '' : ` (by the run's own duration: ${tailor.engineMs <= bound ? 'within' : 'over'})`) +
        (met || warehouse !== 'postgres' ? '' : machineBound([{ size, summary: tailor }], cores)),
    });
  };
  p1('postgres', ref);
  const pgliteSizes = summaries.filter((s) => s.warehouse === 'pglite').map((s) => s.size);
  p1('pglite', pgliteSizes.length > 0 ? Math.max(...pgliteSizes) : undefined);

  for (const [kind, factor] of [
    ['incremental', TARGETS.incrementalFullPullSpeedup],
    ['initial', TARGETS.initialFullPullSpeedup],
  ] as const) {
    const tailor = get(ref, kind, 'tailor');
    const full = get(ref, kind, 'full_pull');
    const target = `P2: ${kind === 'initial' ? 'first load' : 'incremental sync'} ≥ ${factor}× faster than the full pull`;
    if (!tailor || !full) checks.push({ target, status: 'not measured', evidence: '' });
    else {
      const speedup = full.wallMs / tailor.wallMs;
      checks.push({
        target,
        status: speedup >= factor ? 'met' : 'not met',
        evidence: `${at(ref)}: full pull ${formatDuration(full.wallMs)} / tailor ${formatDuration(tailor.wallMs)} = ${formatRatio(speedup)}`,
      });
    }
  }
  {
    const target = `P3: first load ≤ ${TARGETS.initialFloorFactor} × the same first load in SQL, at every size`;
    const pairs = sizes
      .map((size) => ({ size, tailor: get(size, 'initial', 'tailor'), floor: get(size, 'initial', 'floor') }))
      .filter((p) => p.tailor && p.floor);
    if (pairs.length === 0) checks.push({ target, status: 'not measured', evidence: '' });
    else {
      const ratios = pairs.map((p) => ({ ...p, ratio: p.tailor!.wallMs / p.floor!.wallMs }));
      const met = ratios.every((r) => r.ratio <= TARGETS.initialFloorFactor);
      checks.push({
        target,
        status: met ? 'met' : 'not met',
        evidence:
          ratios
            .map(
              (r) =>
                `${formatCount(r.size)} rows: tailor ${formatDuration(r.tailor!.wallMs)} / floor ${formatDuration(r.floor!.wallMs)} = ${formatRatio(r.ratio)} ` +
                `(${formatCount(r.tailor!.membersPerSecond)} members/s)`,
            )
            .join('; ') +
          (met
            ? ''
            : machineBound(
                pairs.map((p) => ({ size: p.size, summary: p.tailor! })),
                cores,
              )),
      });
    }
  }
  {
    const target = `P3: peak RSS ≤ ${formatBytes(TARGETS.peakRssBytes)}, and the first load's flat from the smallest to the largest size`;
    const tailor = summaries.filter(
      (s) => s.system === 'tailor' && s.warehouse === 'postgres' && s.maxPeakRssBytes !== null,
    );
    if (tailor.length === 0) checks.push({ target, status: 'not measured', evidence: '' });
    else {
      const peak = Math.max(...tailor.map((s) => s.maxPeakRssBytes!));
      const small = Math.min(...sizes);
      const large = Math.max(...sizes);
      const peaks = (['initial', 'incremental'] as const).map((kind) => ({
        kind,
        a: get(small, kind, 'tailor')?.maxPeakRssBytes ?? null,
        b: get(large, kind, 'tailor')?.maxPeakRssBytes ?? null,
      }));
      // Held flat: the first load's peaks only (unmeasured at either size counts as no evidence against).
      const { a, b } = peaks.find((p) => p.kind === 'initial')!;
      const flat = small === large ? null : a === null || b === null || b <= a * TARGETS.rssFlatFactor;
      checks.push({
        target,
        status: peak <= TARGETS.peakRssBytes && flat !== false ? 'met' : 'not met',
        evidence:
          `highest peak ${formatBytes(peak)}; ` +
          (flat === null
            ? 'flatness not measured (one size only)'
            : peaks
                .map(
                  (f) =>
                    `${f.kind} ${formatBytes(f.a ?? Number.NaN)} at ${formatCount(small)} → ${formatBytes(f.b ?? Number.NaN)} at ${formatCount(large)}` +
                    (f.kind === 'incremental'
                      ? ' (shown, not held flat: the delta grows with the segment)'
                      : ''),
                )
                .join('; ')),
      });
    }
  }
  {
    // Kept from earlier rounds. Members, not user objects: a changed member is a Delete and an
    // Update, two user objects. A 10k-member delta fits in one request when the reference delta
    // took at most ceil(delta / 10k).
    const target = `A ${formatCount(TARGETS.oneRequestDelta)}-member delta sent in one request`;
    const inc = get(ref, 'incremental', 'tailor');
    if (!inc || inc.requests === null) checks.push({ target, status: 'not measured', evidence: '' });
    else {
      const allowed = Math.ceil(inc.deltaMembers / TARGETS.oneRequestDelta);
      checks.push({
        target,
        status: inc.requests <= allowed ? 'met' : 'not met',
        evidence:
          `the ${formatCount(inc.deltaMembers)}-member incremental delta ${at(ref)} took ${formatCount(inc.requests)} ` +
          `request(s) (${formatCount(allowed)} at ${formatCount(TARGETS.oneRequestDelta)} members each); ` +
          `at most ${formatCount(inc.maxUsersPerRequest ?? Number.NaN)} user objects in one request`,
      });
    }
  }
  return checks;
}

const cpuCell = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? '' : formatDuration(ms);

const SYSTEM_LABEL = {
  tailor: 'Tailor (`tailor sync`)',
  floor: 'Floor (plain SQL)',
  full_pull: 'Full pull (baseline)',
};

/**
 * `step median, …` over one per-step record of Tailor's runs (`diffSteps`, `batchSteps`, `commitSteps`
 * from its debug lines), steps in the order they first appear; a step one run lacks (a commit
 * statement that run did not need) counts 0 there. Empty when no run has the record.
 */
export function stepMedians(
  runs: readonly Measurement[],
  field: 'diffSteps' | 'batchSteps' | 'commitSteps',
): string {
  const records = runs.map((m) => (m.detail?.[field] ?? {}) as Record<string, number>);
  const steps = [...new Set(records.flatMap((record) => Object.keys(record)))];
  return steps
    .map((step) => `${step} ${formatDuration(median(records.map((record) => record[step] ?? 0)))}`)
    .join(', ');
}

/** Medians of where the floor's and the full pull's time went (their own timers). */
function phaseLine(
  measurements: readonly Measurement[],
  warehouse: BenchWarehouseKind,
  size: number,
  kind: 'initial' | 'incremental',
): string {
  const of = (system: string) =>
    measurements.filter(
      (m) => m.warehouse === warehouse && m.size === size && m.kind === kind && m.system === system,
    );
  const med = (items: Measurement[], pick: (m: Measurement) => unknown) =>
    formatDuration(median(items.map((m) => Number(pick(m)))));
  const parts: string[] = [];
  const tailor = of('tailor').filter((m) => m.detail?.diffSteps && Number(m.detail.diffMs) > 0);
  if (tailor.length > 0) {
    parts.push(
      `tailor: diff in the warehouse ${med(tailor, (m) => m.detail!.diffMs)} (${stepMedians(tailor, 'diffSteps')})`,
    );
    const stages = stepMedians(tailor, 'batchSteps');
    if (stages !== '') parts.push(`tailor's batches, summed (they overlap): ${stages}`);
    const statements = stepMedians(tailor, 'commitSteps');
    if (statements !== '') parts.push(`tailor's commit statements, summed (commits overlap): ${statements}`);
  }
  const floor = of('floor').filter((m) => m.detail);
  if (floor.length > 0) {
    parts.push(
      `floor: diff + stream ${med(floor, (m) => m.detail!.diffAndStreamMs)}, merge ${med(floor, (m) => m.detail!.mergeMs)}`,
    );
  }
  const full = of('full_pull').filter((m) => m.detail?.phases);
  if (full.length > 0) {
    const phase = (name: string) => (m: Measurement) => (m.detail!.phases as Record<string, number>)[name];
    parts.push(
      `full pull: snapshot pull ${med(full, phase('pullSnapshotMs'))}, scan + hash + send ${med(full, phase('scanAndSendMs'))}, ` +
        `deletes ${med(full, phase('deletesMs'))}, snapshot write-back ${med(full, phase('writeBackMs'))}`,
    );
  }
  return parts.length > 0 ? `Phases (medians): ${parts.join(' · ')}` : '';
}

function caseTable(
  summaries: readonly Summary[],
  warehouse: BenchWarehouseKind,
  size: number,
  kind: 'initial' | 'incremental',
  cores: number,
): string {
  const rows = (['tailor', 'floor', 'full_pull'] as const)
    .map((system) => findSummary(summaries, { warehouse, size, kind, system }))
    .filter((s): s is Summary => !!s);
  if (rows.length === 0) return '';
  const tailor = rows.find((s) => s.system === 'tailor');
  const floor = rows.find((s) => s.system === 'floor');
  const full = rows.find((s) => s.system === 'full_pull');
  const header =
    '| system | runs | wall time | run itself | rows read | bytes read (wire) | user objects | requests | max users/request | members/s | peak RSS | CPU (process) | CPU (server) | CPU (emulator + proxy) |\n' +
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
  const line = (s: Summary) =>
    `| ${SYSTEM_LABEL[s.system]} | ${s.runs} | ${formatDuration(s.wallMs)} | ${s.system === 'floor' ? '' : formatDuration(s.engineMs)} | ` +
    `${formatCount(s.rowsRead)} | ${s.wireBytes === null ? (s.valueBytes === null ? 'n/a' : `${formatBytes(s.valueBytes)} (values)`) : formatBytes(s.wireBytes)} | ` +
    `${s.userObjects === null ? '' : formatCount(s.userObjects)} | ${s.requests === null ? '' : formatCount(s.requests)} | ` +
    `${s.maxUsersPerRequest === null ? '' : formatCount(s.maxUsersPerRequest)} | ${formatCount(s.membersPerSecond)} | ` +
    `${s.peakRssBytes === null ? '' : formatBytes(s.peakRssBytes)} | ${cpuCell(s.cpuMs)} | ${cpuCell(s.serverCpuMs)} | ${cpuCell(s.benchCpuMs)} |`;
  const ratios: string[] = [];
  if (tailor && floor) {
    ratios.push(
      `tailor/floor ${formatRatio(tailor.wallMs / floor.wallMs)} (run itself: ${formatRatio(tailor.engineMs / floor.wallMs)})`,
    );
  }
  if (tailor && full) ratios.push(`full-pull/tailor ${formatRatio(full.wallMs / tailor.wallMs)}`);
  const delta = rows[0] ? `delta: ${formatCount(rows[0].deltaMembers)} members` : '';
  const machine = tailor ? machineCpuLine(tailor, cores) : '';
  return (
    `${header}\n${rows.map(line).join('\n')}\n\n${[delta, ...ratios].filter(Boolean).join(' · ')}\n` +
    (machine ? `\n${machine}\n` : '')
  );
}

export interface ReportInput {
  options: BenchOptions;
  argv: readonly string[];
  machine: MachineInfo;
  startedAt: Date;
  finishedAt: Date;
  loadAverageAtEnd: number;
  measurements: readonly Measurement[];
  /** The Tailor version measured. */
  commit: string | null;
  /** Things the run itself noticed (skipped cases, fewer repetitions, failures). */
  notes: readonly string[];
}

export function renderReport(input: ReportInput): string {
  const { options, machine, measurements } = input;
  const summaries = summarize(measurements);
  const postgresSizes = [
    ...new Set(measurements.filter((m) => m.warehouse === 'postgres').map((m) => m.size)),
  ].sort((a, b) => a - b);
  const out: string[] = [];
  out.push('# Tailor benchmarks', '');
  out.push(
    `Generated by \`npm run bench${input.argv.length > 0 ? ` -- ${input.argv.join(' ')}` : ''}\` on ` +
      `${input.startedAt.toISOString().replace(/\.\d+Z$/, 'Z')} (took ${formatDuration(input.finishedAt.getTime() - input.startedAt.getTime())}). ` +
      'Every figure is the median of the runs shown; all runs are listed at the end.',
    '',
    `Runs per case: ${options.runs}` +
      (options.largeInitialRuns < options.runs
        ? ` (initial load at 1M rows and more: ${options.largeInitialRuns})`
        : '') +
      '. Progress lines and failures of the run went to stderr.',
    '',
  );
  out.push('## Machine', '');
  out.push('| | |', '| --- | --- |');
  out.push(`| CPU | ${machine.cpuModel} |`);
  out.push(`| cores | ${machine.cores} |`);
  out.push(`| RAM | ${formatBytes(machine.ramBytes)} |`);
  out.push(`| OS | ${machine.os} |`);
  out.push(`| Node.js | ${machine.node} |`);
  out.push(`| PostgreSQL | ${machine.postgres} (local server) |`);
  out.push(`| PostgreSQL settings | ${machine.postgresSettings} |`);
  out.push(`| PGlite | ${machine.pglite} |`);
  out.push(`| Tailor commit | ${input.commit ?? 'unknown'} |`);
  out.push(
    `| load average (1 min) | ${machine.loadAverageAtStart.toFixed(2)} at start, ${input.loadAverageAtEnd.toFixed(2)} at end |`,
  );
  out.push('');

  out.push('## Targets', '');
  out.push('| target | status | evidence |', '| --- | --- | --- |');
  for (const check of checkTargets(summaries, postgresSizes, machine.cores)) {
    out.push(`| ${check.target} | **${check.status}** | ${check.evidence} |`);
  }
  out.push('');

  /** A warehouse's two cases at one size: each one's table, then its phases. */
  const cases = (warehouse: BenchWarehouseKind, size: number, initialTitle: string) => {
    for (const kind of ['initial', 'incremental'] as const) {
      const table = caseTable(summaries, warehouse, size, kind, machine.cores);
      if (!table) continue;
      const phases = phaseLine(measurements, warehouse, size, kind);
      out.push(
        `### ${kind === 'initial' ? initialTitle : 'Incremental sync (1% added, 1% removed, 1% changed)'}`,
        '',
        table,
        ...(phases ? [phases, ''] : []),
      );
    }
  };
  const sizesOf = (warehouse: BenchWarehouseKind) => [
    ...new Set(measurements.filter((m) => m.warehouse === warehouse).map((m) => m.size)),
  ];

  for (const size of postgresSizes) {
    out.push(`## PostgreSQL, ${formatCount(size)} rows`, '');
    cases('postgres', size, 'Initial sync (every member added)');
  }
  for (const size of sizesOf('pglite')) {
    out.push(`## PGlite (embedded, in the Tailor process), ${formatCount(size)} rows`, '');
    cases('pglite', size, 'Initial sync');
  }

  for (const size of sizesOf('bigquery')) {
    out.push(`## BigQuery (local engine: bqemulator on DuckDB), ${formatCount(size)} rows`, '');
    out.push(
      'Reported without a target. These figures describe DuckDB behind a Python REST layer (bqemulator), not',
      "BigQuery: BigQuery's job scheduling, slots, storage and network are not in them. `tailor sync` runs as users run",
      'it, with `api_endpoint` pointing at the emulator and application default credentials (the token comes from a',
      'local stand-in for the GCE metadata server: the benchmark runs offline). *CPU (server)* is the bqemulator',
      "process. The floor is bench/floor.ts's in GoogleSQL on the same emulator (its delta a table, read by the SDK, no",
      'transaction); there is no full pull here.',
      '',
    );
    cases('bigquery', size, 'Initial sync');
  }

  const stopped = measurements.filter((m) => m.partial);
  if (stopped.length > 0) {
    out.push('## Stopped runs', '');
    out.push(
      'These runs were stopped before they finished (time ran out); their figures so far are below and are',
      'left out of every median and target above.',
      '',
      '| warehouse | rows | case | system | stopped after | user objects acknowledged | requests | members/s so far | peak RSS so far |',
      '| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const m of stopped) {
      out.push(
        `| ${m.warehouse} | ${formatCount(m.size)} | ${m.kind} | ${m.system} | ${formatDuration(m.wallMs)} | ` +
          `${formatCount(m.userObjects ?? Number.NaN)} | ${formatCount(m.requests ?? Number.NaN)} | ` +
          `${formatCount((m.userObjects ?? Number.NaN) / (m.wallMs / 1000))} | ` +
          `${m.peakRssBytes === null ? 'n/a' : formatBytes(m.peakRssBytes)} |`,
      );
    }
    out.push('');
  }

  if (input.notes.length > 0) {
    out.push('## Notes from this run', '');
    for (const note of input.notes) out.push(`- ${note}`);
    out.push('');
  }

  out.push('## How it is measured', '');
  out.push(
    [
      '- **Segment**: a `people` table (key, email, phone, X handle, device id, plus two unmapped columns) generated inside',
      '  the warehouse with `generate_series` and deterministic expressions: mixed-case and space-padded emails, US phones',
      '  in three formats, handles with and without `@`, upper- and lowercase IDFAs and Android ids, and missing values',
      '  where a CRM has them. Every value is valid. The model is `select person_id, email, phone, x_handle, device_id from people`.',
      '- **Incremental case**: 1% of members removed (key % 100 = 1), 1% added (new keys), 1% changed (new email,',
      '  key % 100 = 2), by plain SQL. Undoing the edits is the same 1%/1%/1% change, so further incremental runs',
      '  alternate forward and back without reloading the segment. A database-wide `vacuum analyze` (the segment and every',
      "  system's state) and a `checkpoint` run before each measured run, so no run pays for an earlier one's dirty pages,",
      '  WAL or unvacuumed rows (as a system in service, autovacuumed between runs, would not); the order of the systems',
      '  rotates between repetitions.',
      '- **Tailor**: `node bin/tailor.js sync <activation> --json` on a generated project (postgres warehouse, x_ads',
      '  destination pointing at the emulator), as a subprocess, from the transpiled `dist/` that `npm ci` builds (the',
      '  benchmark rebuilds it first). *Wall time* is the process from start to exit (Node start-up included); *run',
      '  itself* is the `durationMs` Tailor reports. Rows read are the delta rows Tailor',
      '  reports (added + removed + changed + refreshed). It runs with `--debug` for the durations of the steps of its',
      '  in-warehouse diff (a handful of log lines), shown under each case.',
      '- **Floor**: the FULL OUTER JOIN of the segment (with an md5 fingerprint of the mapped columns) against a state',
      '  table, materialized, its delta streamed to the client with a cursor, and one MERGE of the delta into the state',
      '  (keys, fingerprints, SHA-256 hashes computed in SQL), in one transaction: plain SQL, no process start, no HTTP.',
      '- **Full pull** (`bench/full-pull.ts`): the design of Hightouch\'s "Basic" engine. Streams the previous',
      '  snapshot (key, fingerprint) and the whole segment out of the warehouse with pg-cursor, fingerprints every row in',
      '  Node, hashes the delta, sends it through the same X Ads client to the same emulator, and writes the new snapshot',
      '  back (bulk `unnest` inserts into a new table, swapped in). Run as a subprocess, measured like Tailor, but',
      "  through tsx's loader (about a second more of start-up in its wall time: compare *run itself* for the design alone).",
      '- **Bytes read** go through a counting TCP proxy in front of PostgreSQL (a worker thread of the benchmark), so they',
      '  are the bytes on the wire from the warehouse to the client, measured the same way for all three. PGlite runs in',
      '  the process, so it has no wire.',
      "- **User objects and requests**: from the emulator's request log (users endpoint only). The emulator runs in the",
      '  benchmark process with rate limits off; it is restarted (empty) for every initial run.',
      "- **Peak RSS**: the kernel's maximum resident set size of the sync process (GNU `time` `%M`, or VmHWM from",
      '  `/proc/<pid>/status`). The emulator and the proxy are not in it.',
      '- **members/s**: delta members (added + removed + changed) per second of wall time.',
      '- **CPU (process)**: user + system CPU time of the sync process (GNU `time`). On a machine shared with other work',
      '  it moves much less than wall time, so it is the better figure to compare when the load average is high.',
      '- **CPU (server)**: user + system CPU time of the PostgreSQL server over the run: every `postgres` process in',
      '  `/proc` (utime, stime, cutime, cstime of `/proc/<pid>/stat`), read before and after it. Backends that exit are',
      '  reaped by the postmaster, so their time is in its cutime/cstime. It counts the whole server (checkpointer, other',
      '  sessions). Empty on PGlite (the database runs inside the measured process) and when the server is not on this',
      '  machine (a note says so).',
      '- **BigQuery (local engine)**: the same segment and edits in GoogleSQL (`bench/people-bigquery.ts`: value for',
      '  value the PostgreSQL expressions, generated with `GENERATE_ARRAY`) in bqemulator, a BigQuery REST emulator in',
      '  Python on DuckDB, started from `.venv-bq`. Tailor is configured as for BigQuery (`project_id`, `location`,',
      '  `api_endpoint` set to the emulator, no key), so it takes application default credentials: the sync process gets',
      '  `GCE_METADATA_HOST` pointing at a local stand-in for the GCE metadata server (`bench/fake-metadata.ts`) and',
      '  `METADATA_SERVER_DETECTION=assume-present`, and asks it for one token per run. One initial load and `--runs`',
      '  incremental runs, measured like the other Tailor runs; *CPU (server)* is the bqemulator process',
      '  (`/proc/<pid>/stat`). The floor (`bench/floor-bigquery.ts`) is the same FULL OUTER JOIN and MERGE in GoogleSQL',
      '  on the emulator: the delta is materialized into a table (no temp table or cursor outside a session) and read',
      '  through the SDK, with no transaction around the three jobs. No full pull. No target: the figures describe DuckDB',
      '  behind a Python REST layer, not BigQuery.',
      '- **CPU (emulator + proxy)**: `process.cpuUsage()` of the benchmark process over the run: the X Ads emulator',
      "  answering the requests and the byte-counting proxy's worker thread. Empty for the floor.",
      '- **machine CPU** (under each case, for Tailor): the tailor process, the server and the emulator + proxy added up,',
      '  divided by the cores: the least wall time that CPU takes on this machine. When it comes close to the wall time,',
      '  the run is bounded by the machine, not by waiting. A P1 or P3 target not met shows it as *machine-bound*.',
    ].join('\n'),
    '',
  );

  out.push('## Every run', '');
  out.push('<details><summary>all measurements</summary>', '');
  out.push(
    '| warehouse | rows | case | system | run | wall | run itself | rows read | wire bytes | added | removed | changed | user objects | requests | peak RSS | CPU | CPU (server) | CPU (emulator + proxy) |',
    '| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const m of measurements) {
    out.push(
      `| ${m.warehouse} | ${formatCount(m.size)} | ${m.kind} | ${m.system} | ${m.run} | ${formatDuration(m.wallMs)} | ` +
        `${formatDuration(m.engineMs)} | ${formatCount(m.rowsRead)} | ${m.wireBytes === null ? '' : formatBytes(m.wireBytes)} | ` +
        `${formatCount(m.added)} | ${formatCount(m.removed)} | ${formatCount(m.changed)} | ` +
        `${m.userObjects === null ? '' : formatCount(m.userObjects)} | ${m.requests === null ? '' : formatCount(m.requests)} | ` +
        `${m.peakRssBytes === null ? '' : formatBytes(m.peakRssBytes)} | ${cpuCell(m.cpuMs)} | ${cpuCell(m.serverCpuMs)} | ${cpuCell(m.benchCpuMs)} |`,
    );
  }
  out.push('', '</details>', '');
  return `${out.join('\n')}\n`;
}
