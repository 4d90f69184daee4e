export { type BackoffPolicy, backoffMs, DEFAULT_BACKOFF } from './backoff.js';
export { activationFingerprint } from './fingerprint.js';
export { SchedulerMetrics, type SkipReason } from './metrics.js';
export { backoffUntil, cronNextRuns, intervalDueAt, type PlannedRun, plannedNextRun } from './next-run.js';
export { type HealthReport, type OpsServer, startOpsServer } from './ops-server.js';
export { type ResumeReason, resolvePause } from './pausing.js';
export {
  type EngineFactory,
  type ReloadResult,
  type ScheduledActivationInfo,
  Scheduler,
  type SchedulerOptions,
  type TickEvent,
} from './scheduler.js';
export { Semaphore } from './semaphore.js';
