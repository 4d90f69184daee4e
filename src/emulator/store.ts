/**
 * The emulator's state: accounts, credentials, custom audiences and their membership records. Pure data
 * and rules, no HTTP. Serializable for the optional persistence file.
 */
import { randomInt } from 'node:crypto';
import { encodeValue, type MemberTimes, MembershipSet } from './membership.js';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type EmulatorSeed,
  type MembershipView,
  type SeedAccount,
  type SeedApp,
  type SeedCredential,
  type SeedUser,
} from './types.js';
import { PackedUsers } from './users-packed.js';

/**
 * Permissions that may change audiences (https://docs.x.com/x-ads-api/fundamentals/accessing-ads-accounts).
 */
export const WRITE_PERMISSIONS: ReadonlySet<string> = new Set([
  'ACCOUNT_ADMIN',
  'AD_MANAGER',
  'PARTNER_AUDIENCE_MANAGER',
]);

const DEMO_USER_ID = '756201191646691328';
const DEMO_ACCESS = { [DEMO_ACCOUNT_ID]: ['ACCOUNT_ADMIN', 'PARTNER_AUDIENCE_MANAGER'] };

export const DEFAULT_SEED: EmulatorSeed = {
  accounts: [{ id: DEMO_ACCOUNT_ID, name: 'Tailor demo account', businessName: 'Tailor Demo' }],
  credentials: [{ ...DEMO_CREDENTIALS, userId: DEMO_USER_ID, access: DEMO_ACCESS }],
  apps: [
    {
      consumerKey: DEMO_CREDENTIALS.consumerKey,
      consumerSecret: DEMO_CREDENTIALS.consumerSecret,
      name: 'Tailor demo app',
    },
  ],
  // Who signs in on the authorize page (`tailor connect` against the emulator).
  users: [{ userId: DEMO_USER_ID, screenName: 'tailor_demo', access: DEMO_ACCESS }],
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

export const PERMISSION_LEVELS = ['READ_ONLY', 'READ_WRITE'] as const;
export type PermissionLevel = (typeof PERMISSION_LEVELS)[number];

/**
 * A sharing permission: the audience's owner lets another ad account use it
 * (https://docs.x.com/x-ads-api/audiences/reference).
 */
export interface PermissionState {
  id: string;
  audienceId: string;
  grantedAccountId: string;
  permissionLevel: PermissionLevel;
  createdAt: number;
  updatedAt: number;
  deleted: boolean;
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
  members: MembershipSet;
  /** Sharing permissions, revoked ones included (`deleted: true`). */
  permissions: PermissionState[];
}

export interface SerializedState {
  format: 'tailor-emulator-state';
  version: 1;
  idPrefix: string;
  nextId: number;
  accounts: AccountState[];
  credentials: SeedCredential[];
  /** Absent in files written before the OAuth flow was emulated. */
  apps?: SeedApp[];
  users?: SeedUser[];
  activeUsers: string[];
  audiences: Array<
    Omit<AudienceState, 'members' | 'permissions'> & {
      /** Absent in files written before sharing was emulated. */
      permissions?: PermissionState[];
      records: Array<{ ids: Record<string, string[]>; effectiveAt: number; expiresAt: number }>;
    }
  >;
}

/**
 * ISO 8601 UTC in second precision with `Z`, as X returns datetimes
 * (https://docs.x.com/x-ads-api/fundamentals/timezones).
 */
export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function lowerKeys(access: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [accountId, permissions] of Object.entries(access))
    out[accountId.toLowerCase()] = [...permissions];
  return out;
}

function parseTime(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? fallback : ms;
}

export class EmulatorStore {
  readonly accounts = new Map<string, AccountState>();
  /** By access token. */
  readonly credentials = new Map<string, SeedCredential>();
  /** By consumer key: apps seeded as such (the apps of credentials are known through them too). */
  readonly apps = new Map<string, SeedApp>();
  /** By user id: who can sign in on the authorize page, in seeding order. */
  readonly users = new Map<string, SeedUser>();
  readonly audiences = new Map<string, AudienceState>();
  activeUsers = new Set<string>();
  /** The active users as encoded identifier values (how the membership stores them). */
  #activeEncoded = new Set<string>();
  /** (effective_at, expires_at) pairs are shared: a batch's users all carry the same two. */
  readonly #times = new Map<string, MemberTimes>();
  #idPrefix: string;
  #nextId = 0;

  constructor(idPrefix?: string) {
    // A random leading base-36 digit keeps ids of different emulator runs apart.
    this.#idPrefix = idPrefix ?? (1 + randomInt(35)).toString(36);
  }

  /** Audience ids, and permission ids too (one counter): short lowercase base 36, as X's (`1nmth`, `ri`). */
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
    for (const app of seed.apps ?? []) this.apps.set(app.consumerKey, { ...app });
    for (const user of seed.users ?? []) {
      this.users.set(user.userId, { ...user, access: lowerKeys(user.access) });
    }
    if (seed.activeUsers) this.#setActiveUsers(seed.activeUsers);
  }

  #setActiveUsers(values: Iterable<string>): void {
    this.activeUsers = new Set(values);
    this.#activeEncoded = new Set([...this.activeUsers].map(encodeValue));
  }

  #internTimes(effectiveAt: number, expiresAt: number): MemberTimes {
    const key = `${effectiveAt}:${expiresAt}`;
    let times = this.#times.get(key);
    if (!times) {
      if (this.#times.size > 100_000) this.#times.clear();
      times = Object.freeze({ effectiveAt, expiresAt });
      this.#times.set(key, times);
    }
    return times;
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

  /**
   * The app behind a consumer key: a seeded app, or else the app of a seeded credential (its secret,
   * approval and allowlisting taken from that credential).
   */
  app(consumerKey: string): SeedApp | undefined {
    const seeded = this.apps.get(consumerKey);
    if (seeded) return seeded;
    for (const credential of this.credentials.values()) {
      if (credential.consumerKey !== consumerKey) continue;
      return {
        consumerKey,
        consumerSecret: credential.consumerSecret,
        ...(credential.adsApiApproved !== undefined ? { adsApiApproved: credential.adsApiApproved } : {}),
        ...(credential.usersEndpointAllowlisted !== undefined
          ? { usersEndpointAllowlisted: credential.usersEndpointAllowlisted }
          : {}),
      };
    }
    return undefined;
  }

  /** The access token pair the OAuth flow gives `app` for `user` (kept, so it works from then on). */
  issueCredential(
    app: SeedApp,
    user: SeedUser,
    accessToken: string,
    accessTokenSecret: string,
  ): SeedCredential {
    const credential: SeedCredential = {
      consumerKey: app.consumerKey,
      consumerSecret: app.consumerSecret,
      accessToken,
      accessTokenSecret,
      userId: user.userId,
      access: lowerKeys(user.access),
      ...(app.adsApiApproved !== undefined ? { adsApiApproved: app.adsApiApproved } : {}),
      ...(app.usersEndpointAllowlisted !== undefined
        ? { usersEndpointAllowlisted: app.usersEndpointAllowlisted }
        : {}),
    };
    this.credentials.set(accessToken, credential);
    return credential;
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
      members: new MembershipSet(),
      permissions: [],
    };
    this.audiences.set(audience.id, audience);
    return audience;
  }

  grantPermission(
    audience: AudienceState,
    grantedAccountId: string,
    permissionLevel: PermissionLevel,
    now: number,
  ): PermissionState {
    const permission: PermissionState = {
      id: this.newAudienceId(),
      audienceId: audience.id,
      grantedAccountId,
      permissionLevel,
      createdAt: now,
      updatedAt: now,
      deleted: false,
    };
    audience.permissions.push(permission);
    return permission;
  }

  /** Other accounts' audiences shared with `accountId` by a live permission (the latest one per audience). */
  sharedWith(accountId: string): Array<{ audience: AudienceState; permission: PermissionState }> {
    const shared: Array<{ audience: AudienceState; permission: PermissionState }> = [];
    for (const audience of this.audiences.values()) {
      if (audience.accountId === accountId) continue;
      const permission = audience.permissions.findLast((p) => !p.deleted && p.grantedAccountId === accountId);
      if (permission) shared.push({ audience, permission });
    }
    return shared;
  }

  /**
   * `Update` for one user object: one record per distinct identifier set; sending the same set again
   * refreshes its effective/expiry times (https://docs.x.com/x-ads-api/audiences/reference, "Custom
   * Audiences Users").
   */
  upsertMember(
    audience: AudienceState,
    user: Record<string, string[]>,
    effectiveAt: number,
    expiresAt: number,
  ) {
    audience.members.upsert(user, this.#internTimes(effectiveAt, expiresAt));
  }

  /** `Update` for an operation's users, which share one (effective_at, expires_at) pair. */
  upsertMembers(
    audience: AudienceState,
    users: ReadonlyArray<Record<string, string[]>> | PackedUsers,
    effectiveAt: number,
    expiresAt: number,
  ): void {
    const times = this.#internTimes(effectiveAt, expiresAt);
    if (users instanceof PackedUsers) {
      for (const recordKey of users.recordKeys) audience.members.upsertKey(recordKey, times);
    } else for (const user of users) audience.members.upsert(user, times);
  }

  /** `Delete` for an operation's users (see deleteMember). */
  deleteMembers(audience: AudienceState, users: ReadonlyArray<Record<string, string[]>> | PackedUsers): void {
    if (users instanceof PackedUsers) {
      for (const recordKey of users.recordKeys) audience.members.deleteKey(recordKey);
    } else for (const user of users) audience.members.delete(user);
  }

  /**
   * `Delete` for one user object: removes every record sharing ANY identifier with it
   * (https://docs.x.com/x-ads-api/audiences/reference).
   */
  deleteMember(audience: AudienceState, user: Record<string, string[]>): void {
    audience.members.delete(user);
  }

  membership(audience: AudienceState): MembershipView {
    return audience.members.view();
  }

  /**
   * The size job (X sizes audiences in batches, https://docs.x.com/x-ads-api/audiences): members active now
   * (effective_at <= now < expires_at) that carry
   * an identifier of the active-users set (every member when that set is empty).
   */
  processAudiences(now: number): void {
    const active = this.#activeEncoded.size === 0 ? null : this.#activeEncoded;
    for (const audience of this.audiences.values()) {
      if (audience.deleted) continue;
      audience.size = audience.members.countActive(now, active);
      audience.processed = true;
    }
  }

  serialize(): SerializedState {
    return {
      format: 'tailor-emulator-state',
      version: 1,
      idPrefix: this.#idPrefix,
      nextId: this.#nextId,
      accounts: [...this.accounts.values()],
      credentials: [...this.credentials.values()],
      apps: [...this.apps.values()],
      users: [...this.users.values()],
      activeUsers: [...this.activeUsers],
      audiences: [...this.audiences.values()].map(({ members, permissions, ...rest }) => ({
        ...rest,
        permissions: permissions.map((p) => ({ ...p })),
        records: [...members.records()].map(({ ids, times }) => ({
          ids,
          effectiveAt: times.effectiveAt,
          expiresAt: times.expiresAt,
        })),
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
    for (const app of state.apps ?? []) store.apps.set(app.consumerKey, app);
    for (const user of state.users ?? []) store.users.set(user.userId, user);
    store.#setActiveUsers(state.activeUsers);
    for (const { records, permissions, ...rest } of state.audiences) {
      const audience: AudienceState = {
        ...rest,
        members: new MembershipSet(),
        permissions: (permissions ?? []).map((p) => ({ ...p })),
      };
      store.audiences.set(audience.id, audience);
      for (const record of records)
        store.upsertMember(audience, record.ids, record.effectiveAt, record.expiresAt);
    }
    return store;
  }
}
