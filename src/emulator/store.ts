/**
 * The emulator's state: accounts, credentials, custom audiences and their membership records. Pure data
 * and rules, no HTTP. Serializable for the optional persistence file.
 */
import { randomInt } from 'node:crypto';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type EmulatorSeed,
  type MembershipView,
  type SeedAccount,
  type SeedCredential,
} from './types.js';

/** Permissions that may change audiences (x-ads-api.md §2.1, §14.2 item 11). */
export const WRITE_PERMISSIONS: ReadonlySet<string> = new Set([
  'ACCOUNT_ADMIN',
  'AD_MANAGER',
  'PARTNER_AUDIENCE_MANAGER',
]);

export const DEFAULT_SEED: EmulatorSeed = {
  accounts: [{ id: DEMO_ACCOUNT_ID, name: 'Tailor demo account', businessName: 'Tailor Demo' }],
  credentials: [
    {
      ...DEMO_CREDENTIALS,
      userId: '756201191646691328',
      access: { [DEMO_ACCOUNT_ID]: ['ACCOUNT_ADMIN', 'PARTNER_AUDIENCE_MANAGER'] },
    },
  ],
};

export interface AccountState {
  id: string;
  name: string;
  businessName: string | null;
  businessId: string | null;
  timezone: string;
  timezoneSwitchAt: number;
  industryType: string | null;
  approvalStatus: string;
  createdAt: number;
  updatedAt: number;
  deleted: boolean;
}

export interface MemberRecord {
  ids: Record<string, string[]>;
  effectiveAt: number;
  expiresAt: number;
}

export interface AudienceState {
  id: string;
  accountId: string;
  name: string;
  description: string | null;
  createdAt: number;
  updatedAt: number;
  deleted: boolean;
  /** The size job has run at least once since creation. */
  processed: boolean;
  /** Matched size at the last size job. */
  size: number | null;
  records: Map<string, MemberRecord>;
  /** `key\0value` -> keys of the records carrying that identifier (Delete matches on any one). */
  index: Map<string, Set<string>>;
}

export interface SerializedState {
  format: 'tailor-emulator-state';
  version: 1;
  idPrefix: string;
  nextId: number;
  accounts: AccountState[];
  credentials: SeedCredential[];
  activeUsers: string[];
  audiences: Array<
    Omit<AudienceState, 'records' | 'index'> & {
      records: Array<{ ids: Record<string, string[]>; effectiveAt: number; expiresAt: number }>;
    }
  >;
}

/** ISO 8601 UTC in second precision with `Z`, as X returns datetimes (x-ads-api.md §3.1). */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function parseTime(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? fallback : ms;
}

/** Canonical form of a user's identifiers: keys sorted, values deduplicated and sorted. */
export function canonicalIds(user: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const key of Object.keys(user).sort()) {
    const values = [...new Set(user[key] ?? [])].sort();
    if (values.length > 0) out[key] = values;
  }
  return out;
}

export class EmulatorStore {
  readonly accounts = new Map<string, AccountState>();
  /** By access token. */
  readonly credentials = new Map<string, SeedCredential>();
  readonly audiences = new Map<string, AudienceState>();
  activeUsers = new Set<string>();
  #idPrefix: string;
  #nextId = 0;

  constructor(idPrefix?: string) {
    // A random leading base-36 digit keeps ids of different emulator runs apart (x-ads-api.md §14.4).
    this.#idPrefix = idPrefix ?? (1 + randomInt(35)).toString(36);
  }

  newAudienceId(): string {
    const id = `${this.#idPrefix}${this.#nextId.toString(36).padStart(4, '0')}`;
    this.#nextId += 1;
    return id;
  }

  seed(seed: EmulatorSeed, now: number): void {
    for (const account of seed.accounts ?? []) this.#upsertAccount(account, now);
    for (const credential of seed.credentials ?? []) {
      const access: Record<string, string[]> = {};
      for (const [accountId, permissions] of Object.entries(credential.access)) {
        access[accountId.toLowerCase()] = [...permissions];
      }
      this.credentials.set(credential.accessToken, { ...credential, access });
    }
    if (seed.activeUsers) this.activeUsers = new Set(seed.activeUsers);
  }

  #upsertAccount(seed: SeedAccount, now: number): void {
    const id = seed.id.toLowerCase();
    const existing = this.accounts.get(id);
    const createdAt = parseTime(seed.createdAt, existing?.createdAt ?? now);
    this.accounts.set(id, {
      id,
      name: seed.name ?? existing?.name ?? `Account ${id}`,
      businessName: seed.businessName !== undefined ? seed.businessName : (existing?.businessName ?? null),
      businessId: seed.businessId !== undefined ? seed.businessId : (existing?.businessId ?? null),
      timezone: seed.timezone ?? existing?.timezone ?? 'America/Los_Angeles',
      timezoneSwitchAt: existing?.timezoneSwitchAt ?? createdAt,
      industryType: seed.industryType !== undefined ? seed.industryType : (existing?.industryType ?? null),
      approvalStatus: seed.approvalStatus ?? existing?.approvalStatus ?? 'ACCEPTED',
      createdAt,
      updatedAt: now,
      deleted: seed.deleted ?? existing?.deleted ?? false,
    });
  }

  /** Consumer secret + token secret of a known token of a known app. */
  secretsFor(
    consumerKey: string,
    token: string,
  ): { consumerSecret: string; tokenSecret: string } | undefined {
    const credential = this.credentials.get(token);
    if (!credential || credential.consumerKey !== consumerKey) return undefined;
    return { consumerSecret: credential.consumerSecret, tokenSecret: credential.accessTokenSecret };
  }

  findAudience(accountId: string, audienceId: string): AudienceState | undefined {
    const audience = this.audiences.get(audienceId);
    return audience && audience.accountId === accountId ? audience : undefined;
  }

  audiencesOf(accountId: string): AudienceState[] {
    return [...this.audiences.values()].filter((a) => a.accountId === accountId);
  }

  /** A live (non-deleted) audience of the account with this exact name, other than `exceptId`. */
  nameTaken(accountId: string, name: string, exceptId?: string): boolean {
    for (const audience of this.audiences.values()) {
      if (
        audience.accountId === accountId &&
        !audience.deleted &&
        audience.name === name &&
        audience.id !== exceptId
      ) {
        return true;
      }
    }
    return false;
  }

  createAudience(accountId: string, name: string, description: string | null, now: number): AudienceState {
    const audience: AudienceState = {
      id: this.newAudienceId(),
      accountId,
      name,
      description,
      createdAt: now,
      updatedAt: now,
      deleted: false,
      processed: false,
      size: null,
      records: new Map(),
      index: new Map(),
    };
    this.audiences.set(audience.id, audience);
    return audience;
  }

  /**
   * `Update` for one user object: one record per distinct identifier set; sending the same set again
   * refreshes its effective/expiry times (x-ads-api.md §6.3 "re-sending Update refreshes").
   */
  upsertMember(
    audience: AudienceState,
    user: Record<string, string[]>,
    effectiveAt: number,
    expiresAt: number,
  ) {
    const ids = canonicalIds(user);
    const key = JSON.stringify(ids);
    const existing = audience.records.get(key);
    if (existing) {
      existing.effectiveAt = effectiveAt;
      existing.expiresAt = expiresAt;
      return;
    }
    audience.records.set(key, { ids, effectiveAt, expiresAt });
    for (const [k, values] of Object.entries(ids)) {
      for (const v of values) {
        const indexKey = `${k}\u0000${v}`;
        let set = audience.index.get(indexKey);
        if (!set) audience.index.set(indexKey, (set = new Set()));
        set.add(key);
      }
    }
  }

  /** `Delete` for one user object: removes every record sharing ANY identifier with it (x-ads-api.md §6.1). */
  deleteMember(audience: AudienceState, user: Record<string, string[]>): void {
    const doomed = new Set<string>();
    for (const [k, values] of Object.entries(user)) {
      for (const v of values) {
        for (const key of audience.index.get(`${k}\u0000${v}`) ?? []) doomed.add(key);
      }
    }
    for (const key of doomed) {
      const record = audience.records.get(key);
      if (!record) continue;
      audience.records.delete(key);
      for (const [k, values] of Object.entries(record.ids)) {
        for (const v of values) {
          const indexKey = `${k}\u0000${v}`;
          const set = audience.index.get(indexKey);
          set?.delete(key);
          if (set && set.size === 0) audience.index.delete(indexKey);
        }
      }
    }
  }

  membership(audience: AudienceState): MembershipView {
    const records = [...audience.records.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, record]) => canonicalIds(record.ids));
    const union: Record<string, Set<string>> = {};
    for (const record of records) {
      for (const [k, values] of Object.entries(record)) {
        const set = (union[k] ??= new Set());
        for (const v of values) set.add(v);
      }
    }
    const identifiers: Record<string, string[]> = {};
    for (const k of Object.keys(union).sort()) identifiers[k] = [...(union[k] ?? [])].sort();
    return { records, identifiers };
  }

  /**
   * The size job (x-ads-api.md §14.6): members active now (effective_at <= now < expires_at) that carry
   * an identifier of the active-users set (every member when that set is empty).
   */
  processAudiences(now: number): void {
    for (const audience of this.audiences.values()) {
      if (audience.deleted) continue;
      let size = 0;
      for (const record of audience.records.values()) {
        if (record.effectiveAt > now || record.expiresAt <= now) continue;
        if (this.activeUsers.size === 0 || this.#isActive(record)) size += 1;
      }
      audience.processed = true;
      audience.size = size;
    }
  }

  #isActive(record: MemberRecord): boolean {
    for (const values of Object.values(record.ids)) {
      for (const v of values) if (this.activeUsers.has(v)) return true;
    }
    return false;
  }

  serialize(): SerializedState {
    return {
      format: 'tailor-emulator-state',
      version: 1,
      idPrefix: this.#idPrefix,
      nextId: this.#nextId,
      accounts: [...this.accounts.values()],
      credentials: [...this.credentials.values()],
      activeUsers: [...this.activeUsers],
      audiences: [...this.audiences.values()].map(({ records, index: _index, ...rest }) => ({
        ...rest,
        records: [...records.values()],
      })),
    };
  }

  static deserialize(state: SerializedState): EmulatorStore {
    if (state.format !== 'tailor-emulator-state' || state.version !== 1) {
      throw new Error('not a tailor emulator state file (format/version)');
    }
    const store = new EmulatorStore(state.idPrefix);
    store.#nextId = state.nextId;
    for (const account of state.accounts) store.accounts.set(account.id, { ...account });
    for (const credential of state.credentials) store.credentials.set(credential.accessToken, credential);
    store.activeUsers = new Set(state.activeUsers);
    for (const { records, ...rest } of state.audiences) {
      const audience: AudienceState = { ...rest, records: new Map(), index: new Map() };
      store.audiences.set(audience.id, audience);
      for (const record of records)
        store.upsertMember(audience, record.ids, record.effectiveAt, record.expiresAt);
    }
    return store;
  }
}
