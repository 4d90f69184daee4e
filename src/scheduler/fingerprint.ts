import { createHash } from 'node:crypto';
import type { ResolvedActivation } from '../config/resolve-activation.js';

/** JSON with object keys sorted, so equal values always serialize alike. */
function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
}

/**
 * A fingerprint of everything that decides what an activation's run does: the model's SQL and
 * key, the destination settings, the audience, mappings, schedule and options. A paused activation
 * resumes when this changes (the user edited something). Credentials are left out on purpose: a
 * rotated key says nothing about why runs failed, and secrets should not feed anything stored.
 */
export function activationFingerprint(activation: ResolvedActivation): string {
  const { credentials: _credentials, ...destination } = activation.destination as Record<string, unknown>;
  const subject = {
    id: activation.id,
    model: {
      name: activation.model.name,
      description: activation.model.description,
      primaryKey: activation.model.primaryKey,
      sql: activation.model.sql,
    },
    destinationName: activation.destinationName,
    destination,
    audience: activation.audience,
    explicitMappings: activation.explicitMappings ?? null,
    defaultMappings: activation.defaultMappings,
    schedule: activation.schedule.text,
    timezone: activation.timezone,
    mode: activation.mode,
    enabled: activation.enabled,
    phoneDefaultRegion: activation.phoneDefaultRegion,
    maxRemovalShare: activation.maxRemovalShare,
    refreshAfterDays: activation.refreshAfterDays,
  };
  return createHash('sha256').update(stableJson(subject)).digest('hex');
}
