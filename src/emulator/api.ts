/**
 * The X Ads API surface the emulator serves (https://docs.x.com/x-ads-api/campaign-management/reference and
 * https://docs.x.com/x-ads-api/audiences/reference): accounts, custom audience
 * CRUD, the users endpoint, sharing permissions and the targeted list, under `/{version}/`.
 * Authentication, faults and rate limits run in `server.ts` before these handlers; these only read
 * parameters and the store.
 */
import { type EmulatorResponse, type Params, singleError } from './http-util.js';
import type { UrlEncodedPairs } from './oauth.js';
import {
  type AccountState,
  type AudienceState,
  type EmulatorStore,
  isoSeconds,
  PERMISSION_LEVELS,
  type PermissionLevel,
  type PermissionState,
} from './store.js';
import type { EmulatorSwitches } from './switches.js';
import type { SeedCredential } from './types.js';
import { validateUsersRequest } from './users-validation.js';

export type RouteName =
  | 'accounts'
  | 'account'
  | 'authenticated_user_access'
  | 'custom_audiences'
  | 'custom_audience'
  | 'custom_audience_users'
  | 'custom_audience_permissions'
  | 'custom_audience_permission'
  | 'custom_audience_targeted';

export interface Route {
  name: RouteName;
  methods: readonly string[];
  accountId?: string;
  audienceId?: string;
  permissionId?: string;
}

/** Matches the path after the version. Legacy names (tailored_audiences, …) simply match nothing. */
export function matchRoute(segments: string[]): Route | undefined {
  const [first, accountId, third, audienceId, fifth, permissionId, ...rest] = segments;
  if (first !== 'accounts' || rest.length > 0) return undefined;
  if (permissionId !== undefined) {
    // Only DELETE …/custom_audiences/:id/permissions/:permission_id has a sixth element.
    if (!accountId || third !== 'custom_audiences' || fifth !== 'permissions' || !audienceId || !permissionId)
      return undefined;
    return { name: 'custom_audience_permission', methods: ['DELETE'], accountId, audienceId, permissionId };
  }
  if (accountId === undefined) return { name: 'accounts', methods: ['GET'] };
  if (accountId === '') return undefined;
  if (third === undefined) return { name: 'account', methods: ['GET'], accountId };
  if (third === 'authenticated_user_access' && audienceId === undefined) {
    return { name: 'authenticated_user_access', methods: ['GET'], accountId };
  }
  if (third !== 'custom_audiences') return undefined;
  if (audienceId === undefined) return { name: 'custom_audiences', methods: ['GET', 'POST'], accountId };
  if (audienceId === '') return undefined;
  if (fifth === undefined) {
    return { name: 'custom_audience', methods: ['GET', 'PUT', 'DELETE'], accountId, audienceId };
  }
  if (fifth === 'users') return { name: 'custom_audience_users', methods: ['POST'], accountId, audienceId };
  if (fifth === 'permissions') {
    return { name: 'custom_audience_permissions', methods: ['GET', 'POST'], accountId, audienceId };
  }
  if (fifth === 'targeted')
    return { name: 'custom_audience_targeted', methods: ['GET'], accountId, audienceId };
  return undefined;
}

export interface ApiRequest {
  method: string;
  route: Route;
  /** Lower-cased (when the switch says so) path ids. */
  accountId?: string;
  audienceId?: string;
  permissionId?: string;
  query: UrlEncodedPairs;
  form: UrlEncodedPairs;
  contentType: string | undefined;
  body: Buffer;
  bytes: number;
  credential: SeedCredential;
  now: number;
  /** Whether an injected count_mismatch fault applies to this (valid) users request. */
  countMismatch: () => boolean;
}

export interface ApiResult {
  response: EmulatorResponse;
  mutated: boolean;
  operations?: number;
  users?: number;
}

class ParamError extends Error {
  constructor(
    readonly code: string,
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Length of a name or `q` in Unicode code points: an emoji counts one, not the two UTF-16 units of
 * `String#length`. X documents no name limit and does not say what its `q` filter's "1-255 characters"
 * counts (https://docs.x.com/x-ads-api/audiences/reference), so this is a choice, the same one
 * tailor.yml's schema makes; the `maxNameLength` switch moves the name limit if X turns out to differ.
 * Written here rather than imported: the emulator shares no code with what it judges.
 */
function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

const SORT_BY = /^(created_at|updated_at|deleted|name)-(asc|desc)$/;
const CSV_PARAMS = new Set([
  'account_ids',
  'custom_audience_ids',
  'granted_account_ids',
  'custom_audience_permission_ids',
]);
const INT_PARAMS = new Set(['count']);
const BOOL_PARAMS = new Set(['with_deleted', 'with_total_count', 'with_active']);

/** Reads known query parameters, validating their form; echo holds how the server read them (§3.1). */
class QueryReader {
  readonly echo: Params;
  readonly #values = new Map<string, string>();
  readonly #switches: EmulatorSwitches;

  constructor(pairs: UrlEncodedPairs, known: readonly string[], base: Params, switches: EmulatorSwitches) {
    this.echo = { ...base };
    this.#switches = switches;
    for (const [k, v] of pairs) {
      if (known.includes(k)) this.#values.set(k, v);
    }
    for (const [k, v] of this.#values) {
      if (CSV_PARAMS.has(k)) this.echo[k] = v.split(',');
      else if (INT_PARAMS.has(k) && /^\d+$/.test(v)) this.echo[k] = Number(v);
      else if (BOOL_PARAMS.has(k) && !switches.echoBooleansAsStrings && (v === 'true' || v === 'false')) {
        this.echo[k] = v === 'true';
      } else this.echo[k] = v;
    }
  }

  has(name: string): boolean {
    return this.#values.has(name);
  }

  string(name: string): string | undefined {
    return this.#values.get(name);
  }

  bool(name: string, fallback = false): boolean {
    const value = this.#values.get(name);
    if (value === undefined) return fallback;
    if (value === 'true') return true;
    if (value === 'false') return false;
    throw new ParamError(
      'INVALID_PARAMETER',
      name,
      `Expected boolean, got ${JSON.stringify(value)} for ${name}`,
    );
  }

  count(): number {
    const value = this.#values.get('count');
    if (value === undefined) return 200;
    const n = /^\d{1,4}$/.test(value) ? Number(value) : NaN;
    if (!(n >= 1 && n <= 1000)) {
      throw new ParamError('INVALID_PARAMETER', 'count', 'Expected an integer between 1 and 1000 for count');
    }
    return n;
  }

  list(name: string, max: number): string[] | undefined {
    const value = this.#values.get(name);
    if (value === undefined) return undefined;
    const items = value.split(',').filter((v) => v !== '');
    if (items.length === 0 || items.length > max) {
      throw new ParamError('INVALID_PARAMETER', name, `Expected between 1 and ${max} values for ${name}`);
    }
    return this.#switches.caseInsensitiveIds ? items.map((i) => i.toLowerCase()) : items;
  }

  /**
   * Offset encoded in the opaque cursor; exclusive with with_total_count
   * (https://docs.x.com/x-ads-api/fundamentals/pagination).
   */
  cursor(): number {
    const value = this.#values.get('cursor');
    if (this.has('cursor') && this.bool('with_total_count')) {
      throw new ParamError(
        'EXCLUSIVE_PARAMETERS',
        'cursor',
        'cursor and with_total_count are mutually exclusive',
      );
    }
    if (value === undefined) return 0;
    const match = /^c-([0-9a-z]{1,10})$/.exec(value);
    if (!match) throw new ParamError('INVALID_PARAMETER', 'cursor', 'Invalid cursor');
    return parseInt(match[1] ?? '0', 36);
  }

  q(): string | undefined {
    const value = this.#values.get('q');
    if (value === undefined) return undefined;
    const length = codePoints(value);
    if (length < 1 || length > 255) {
      throw new ParamError('INVALID_PARAMETER', 'q', 'Expected a string of 1 to 255 characters for q');
    }
    return value.toLowerCase();
  }

  sortBy(): { field: string; desc: boolean } | undefined {
    const value = this.#values.get('sort_by');
    if (value === undefined) return undefined;
    const match = SORT_BY.exec(value);
    if (!match)
      throw new ParamError('INVALID_PARAMETER', 'sort_by', `Invalid sort_by ${JSON.stringify(value)}`);
    return { field: match[1] ?? 'created_at', desc: match[2] === 'desc' };
  }
}

function sortAndPage<
  T extends { createdAt: number; updatedAt: number; deleted: boolean; name?: string; id: string },
>(items: T[], query: QueryReader): { page: T[]; nextCursor: string | null; total: number } {
  const sort = query.sortBy();
  const count = query.count();
  const offset = query.cursor();
  const field = sort?.field ?? 'created_at';
  const direction = sort?.desc ? -1 : 1;
  const key = (item: T): number | string =>
    field === 'name'
      ? (item.name ?? '')
      : field === 'deleted'
        ? Number(item.deleted)
        : field === 'updated_at'
          ? item.updatedAt
          : item.createdAt;
  const sorted = [...items].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka < kb) return -direction;
    if (ka > kb) return direction;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  const page = sorted.slice(offset, offset + count);
  const nextCursor = offset + count < sorted.length ? `c-${(offset + count).toString(36)}` : null;
  return { page, nextCursor, total: sorted.length };
}

export function accountJson(account: AccountState, single: boolean): Record<string, unknown> {
  return {
    name: account.name,
    business_name: account.businessName,
    timezone: account.timezone,
    timezone_switch_at: isoSeconds(account.timezoneSwitchAt),
    id: account.id,
    created_at: isoSeconds(account.createdAt),
    updated_at: isoSeconds(account.updatedAt),
    business_id: account.businessId,
    approval_status: account.approvalStatus,
    deleted: account.deleted,
    ...(single ? { industry_type: account.industryType } : {}),
  };
}

/**
 * Audience states (https://docs.x.com/x-ads-api/audiences, "Targeting": under 100 matched users an
 * audience is not targetable). `sharedAs`: the level of the permission through which a granted account
 * sees another account's audience (then `is_owner: false`).
 */
export function audienceJson(
  audience: AudienceState,
  switches: EmulatorSwitches,
  sharedAs?: PermissionLevel,
): Record<string, unknown> {
  const size = audience.size ?? 0;
  const targetable = audience.processed && size >= switches.minTargetableSize;
  const reasons = !audience.processed ? ['PROCESSING', 'TOO_SMALL'] : targetable ? [] : ['TOO_SMALL'];
  let shownSize: number | null = targetable ? size : null;
  if (shownSize !== null && switches.roundAudienceSize) {
    const magnitude = 10 ** Math.max(0, Math.floor(Math.log10(shownSize)) - 1);
    shownSize = Math.floor(shownSize / magnitude) * magnitude;
  }
  return {
    targetable,
    name: audience.name,
    targetable_types: ['CRM', 'EXCLUDED_CRM'],
    audience_type: 'CRM',
    description: audience.description,
    permission_level: sharedAs ?? 'READ_WRITE',
    owner_account_id: audience.accountId,
    is_owner: sharedAs === undefined,
    id: audience.id,
    reasons_not_targetable: reasons,
    created_at: isoSeconds(audience.createdAt),
    updated_at: isoSeconds(audience.updatedAt),
    partner_source: 'OTHER',
    deleted: audience.deleted,
    audience_size: shownSize,
  };
}

/** A sharing permission as X returns it (the recorded SDK fixture's fields, custom_audience_id included). */
export function permissionJson(permission: PermissionState): Record<string, unknown> {
  return {
    custom_audience_id: permission.audienceId,
    permission_level: permission.permissionLevel,
    id: permission.id,
    created_at: isoSeconds(permission.createdAt),
    granted_account_id: permission.grantedAccountId,
    updated_at: isoSeconds(permission.updatedAt),
    deleted: permission.deleted,
  };
}

const PERMISSION_LIST_PARAMS = [
  'count',
  'cursor',
  'custom_audience_permission_ids',
  'granted_account_ids',
  'sort_by',
  'with_total_count',
];

const ACCOUNT_PARAMS = ['account_ids', 'count', 'cursor', 'q', 'sort_by', 'with_deleted', 'with_total_count'];
const AUDIENCE_LIST_PARAMS = [
  'count',
  'cursor',
  'custom_audience_ids',
  'permission_scope',
  'q',
  'sort_by',
  'with_deleted',
  'with_total_count',
];

export class ApiHandlers {
  readonly #store: EmulatorStore;
  readonly #switches: EmulatorSwitches;

  constructor(store: EmulatorStore, switches: EmulatorSwitches) {
    this.#store = store;
    this.#switches = switches;
  }

  handle(req: ApiRequest): ApiResult {
    const base: Params = {};
    if (req.accountId !== undefined) base.account_id = req.accountId;
    if (req.audienceId !== undefined) base.custom_audience_id = req.audienceId;
    try {
      switch (req.route.name) {
        case 'accounts':
          return { response: this.#listAccounts(req), mutated: false };
        case 'account':
          return { response: this.#getAccount(req, base), mutated: false };
        case 'authenticated_user_access':
          return { response: this.#userAccess(req, base), mutated: false };
        case 'custom_audiences':
          return req.method === 'POST' ? this.#createAudience(req, base) : this.#listAudiences(req, base);
        case 'custom_audience':
          if (req.method === 'GET') return { response: this.#getAudience(req, base), mutated: false };
          if (req.method === 'PUT') return this.#updateAudience(req, base);
          return this.#deleteAudience(req, base);
        case 'custom_audience_users':
          return this.#users(req, base);
        case 'custom_audience_permissions':
          return req.method === 'POST'
            ? this.#grantPermission(req, base)
            : { response: this.#listPermissions(req, base), mutated: false };
        case 'custom_audience_permission':
          if (req.permissionId !== undefined) base.custom_audience_permission_id = req.permissionId;
          return this.#revokePermission(req, base);
        case 'custom_audience_targeted':
          return { response: this.#targeted(req, base), mutated: false };
      }
    } catch (error) {
      if (error instanceof ParamError) {
        return {
          response: singleError(400, error.code, error.message, base, error.parameter),
          mutated: false,
        };
      }
      throw error;
    }
  }

  #listAccounts(req: ApiRequest): EmulatorResponse {
    const query = new QueryReader(req.query, ACCOUNT_PARAMS, {}, this.#switches);
    const ids = query.list('account_ids', 200);
    const withDeleted = query.bool('with_deleted');
    const withTotal = query.bool('with_total_count');
    const q = query.q();
    const visible = Object.keys(req.credential.access)
      .map((id) => this.#store.accounts.get(id))
      .filter((a): a is AccountState => a !== undefined)
      .filter((a) => withDeleted || !a.deleted)
      .filter((a) => !ids || ids.includes(a.id))
      .filter((a) => q === undefined || a.name.toLowerCase().startsWith(q));
    const { page, nextCursor, total } = sortAndPage(visible, query);
    return {
      status: 200,
      json: {
        request: { params: query.echo },
        data: page.map((a) => accountJson(a, false)),
        data_type: 'account',
        ...(withTotal ? { total_count: total } : {}),
        next_cursor: nextCursor,
      },
    };
  }

  #getAccount(req: ApiRequest, base: Params): EmulatorResponse {
    const query = new QueryReader(req.query, ['with_deleted'], base, this.#switches);
    const account = this.#store.accounts.get(req.accountId ?? '');
    if (!account || (account.deleted && !query.bool('with_deleted'))) {
      return singleError(404, 'NOT_FOUND', `Account ${req.accountId} was not found`, query.echo);
    }
    return {
      status: 200,
      json: { data_type: 'account', data: accountJson(account, true), request: { params: query.echo } },
    };
  }

  #userAccess(req: ApiRequest, base: Params): EmulatorResponse {
    const permissions = req.credential.access[req.accountId ?? ''] ?? [];
    return {
      status: 200,
      json: {
        request: { params: base },
        data: { user_id: req.credential.userId ?? '0', permissions: [...permissions] },
      },
    };
  }

  #listAudiences(req: ApiRequest, base: Params): ApiResult {
    const query = new QueryReader(req.query, AUDIENCE_LIST_PARAMS, base, this.#switches);
    const ids = query.list('custom_audience_ids', 200);
    const withDeleted = query.bool('with_deleted');
    const withTotal = query.bool('with_total_count');
    const q = query.q();
    const scope = query.string('permission_scope') ?? 'OWNER';
    if (scope !== 'OWNER' && scope !== 'SHARED') {
      throw new ParamError(
        'INVALID_PARAMETER',
        'permission_scope',
        'Expected one of OWNER, SHARED for permission_scope',
      );
    }
    // SHARED: other accounts' audiences shared with this one through a live permission.
    const sharedAs = new Map<string, PermissionLevel>();
    if (scope === 'SHARED') {
      for (const { audience, permission } of this.#store.sharedWith(req.accountId ?? '')) {
        sharedAs.set(audience.id, permission.permissionLevel);
      }
    }
    const audiences = (
      scope === 'SHARED'
        ? [...sharedAs.keys()].map((id) => this.#store.audiences.get(id)).filter((a) => a !== undefined)
        : this.#store.audiencesOf(req.accountId ?? '')
    )
      .filter((a) => withDeleted || !a.deleted)
      .filter((a) => !ids || ids.includes(a.id))
      .filter((a) => q === undefined || a.name.toLowerCase().startsWith(q));
    const { page, nextCursor, total } = sortAndPage(audiences, query);
    return {
      mutated: false,
      response: {
        status: 200,
        json: {
          request: { params: query.echo },
          data: page.map((a) => audienceJson(a, this.#switches, sharedAs.get(a.id))),
          data_type: 'custom_audience',
          ...(withTotal ? { total_count: total } : {}),
          next_cursor: nextCursor,
        },
      },
    };
  }

  /**
   * `name`/`description` from the query string, or from a form-urlencoded body (the emulator accepts both).
   */
  #field(req: ApiRequest, name: string): string | undefined {
    for (const [k, v] of req.query) if (k === name) return v;
    if (this.#switches.acceptFormBody) for (const [k, v] of req.form) if (k === name) return v;
    return undefined;
  }

  #checkName(
    name: string,
    accountId: string,
    params: Params,
    exceptId?: string,
  ): EmulatorResponse | undefined {
    if (codePoints(name) > this.#switches.maxNameLength) {
      return singleError(
        400,
        'INVALID_PARAMETER',
        `Expected a name of at most ${this.#switches.maxNameLength} characters`,
        params,
        'name',
      );
    }
    if (this.#store.nameTaken(accountId, name, exceptId)) {
      return singleError(
        400,
        this.#switches.duplicateNameCode,
        'A custom audience with this name already exists in the account',
        params,
        'name',
      );
    }
    return undefined;
  }

  #createAudience(req: ApiRequest, base: Params): ApiResult {
    const name = this.#field(req, 'name');
    const description = this.#field(req, 'description');
    const params: Params = { ...base };
    if (name !== undefined) params.name = name;
    if (description !== undefined) params.description = description;
    if (name === undefined || name === '') {
      return {
        mutated: false,
        response: singleError(400, 'MISSING_PARAMETER', '"name" is missing', params, 'name'),
      };
    }
    const invalid = this.#checkName(name, req.accountId ?? '', params);
    if (invalid) return { mutated: false, response: invalid };
    const audience = this.#store.createAudience(
      req.accountId ?? '',
      name,
      description === undefined || description === '' ? null : description,
      req.now,
    );
    return {
      mutated: true,
      response: {
        status: 200,
        json: {
          data_type: 'custom_audience',
          data: audienceJson(audience, this.#switches),
          request: { params },
        },
      },
    };
  }

  #notFound(req: ApiRequest, params: Params): EmulatorResponse {
    return singleError(
      404,
      this.#switches.audienceNotFoundCode,
      `Custom audience ${req.audienceId} was not found`,
      params,
    );
  }

  #liveAudience(req: ApiRequest, withDeleted = false): AudienceState | undefined {
    const audience = this.#store.findAudience(req.accountId ?? '', req.audienceId ?? '');
    if (!audience || (audience.deleted && !withDeleted)) return undefined;
    return audience;
  }

  #getAudience(req: ApiRequest, base: Params): EmulatorResponse {
    const query = new QueryReader(req.query, ['with_deleted'], base, this.#switches);
    const audience = this.#liveAudience(req, query.bool('with_deleted'));
    if (!audience) return this.#notFound(req, query.echo);
    return {
      status: 200,
      json: {
        data_type: 'custom_audience',
        data: audienceJson(audience, this.#switches),
        request: { params: query.echo },
      },
    };
  }

  #updateAudience(req: ApiRequest, base: Params): ApiResult {
    const name = this.#field(req, 'name');
    const description = this.#field(req, 'description');
    const params: Params = { ...base };
    if (name !== undefined) params.name = name;
    if (description !== undefined) params.description = description;
    const audience = this.#liveAudience(req);
    if (!audience) return { mutated: false, response: this.#notFound(req, params) };
    if (name !== undefined) {
      if (name === '') {
        return {
          mutated: false,
          response: singleError(400, 'INVALID_PARAMETER', 'name cannot be empty', params, 'name'),
        };
      }
      const invalid = this.#checkName(name, audience.accountId, params, audience.id);
      if (invalid) return { mutated: false, response: invalid };
      audience.name = name;
    }
    // An empty string unsets an optional field
    // (https://docs.x.com/x-ads-api/fundamentals/making-authenticated-requests).
    if (description !== undefined) audience.description = description === '' ? null : description;
    audience.updatedAt = req.now;
    return {
      mutated: true,
      response: {
        status: 200,
        json: {
          data_type: 'custom_audience',
          data: audienceJson(audience, this.#switches),
          request: { params },
        },
      },
    };
  }

  #deleteAudience(req: ApiRequest, base: Params): ApiResult {
    const audience = this.#liveAudience(req);
    if (!audience) return { mutated: false, response: this.#notFound(req, base) };
    audience.deleted = true;
    audience.updatedAt = req.now;
    return {
      mutated: true,
      response: {
        status: 200,
        json: {
          data_type: 'custom_audience',
          data: audienceJson(audience, this.#switches),
          request: { params: base },
        },
      },
    };
  }

  /** GET …/custom_audiences/:id/permissions: the audience's live sharing permissions (owner only). */
  #listPermissions(req: ApiRequest, base: Params): EmulatorResponse {
    const query = new QueryReader(req.query, PERMISSION_LIST_PARAMS, base, this.#switches);
    const ids = query.list('custom_audience_permission_ids', 200);
    const granted = query.list('granted_account_ids', 200);
    const withTotal = query.bool('with_total_count');
    const audience = this.#liveAudience(req);
    if (!audience) return this.#notFound(req, query.echo);
    const permissions = audience.permissions
      .filter((p) => !p.deleted)
      .filter((p) => !ids || ids.includes(p.id))
      .filter((p) => !granted || granted.includes(p.grantedAccountId));
    const { page, nextCursor, total } = sortAndPage(permissions, query);
    return {
      status: 200,
      json: {
        request: { params: query.echo },
        data: page.map(permissionJson),
        data_type: 'custom_audience_permission',
        ...(withTotal ? { total_count: total } : {}),
        next_cursor: nextCursor,
      },
    };
  }

  /**
   * POST …/custom_audiences/:id/permissions?granted_account_id=&permission_level=: shares the audience.
   * Only its owner reaches it (another account's audience is not found through its path). X limits
   * sharing to one business unless the owner has the SHARE_AUDIENCE_OUTSIDE_BUSINESS feature; accounts'
   * features are not emulated, so that is not checked.
   */
  #grantPermission(req: ApiRequest, base: Params): ApiResult {
    const grantedRaw = this.#field(req, 'granted_account_id');
    const level = this.#field(req, 'permission_level');
    const params: Params = { ...base };
    if (grantedRaw !== undefined) params.granted_account_id = grantedRaw;
    if (level !== undefined) params.permission_level = level;
    const refuse = (code: string, parameter: string, message: string): ApiResult => ({
      mutated: false,
      response: singleError(400, code, message, params, parameter),
    });
    if (!grantedRaw)
      return refuse('MISSING_PARAMETER', 'granted_account_id', '"granted_account_id" is missing');
    if (!level) return refuse('MISSING_PARAMETER', 'permission_level', '"permission_level" is missing');
    const granted = this.#switches.caseInsensitiveIds ? grantedRaw.toLowerCase() : grantedRaw;
    if (!/^[0-9a-z]+$/.test(granted)) {
      return refuse(
        'INVALID_PARAMETER',
        'granted_account_id',
        'Expected an account id for granted_account_id',
      );
    }
    if (!(PERMISSION_LEVELS as readonly string[]).includes(level)) {
      return refuse(
        'INVALID_PARAMETER',
        'permission_level',
        `Expected one of ${PERMISSION_LEVELS.join(', ')} for permission_level`,
      );
    }
    const audience = this.#liveAudience(req);
    if (!audience) return { mutated: false, response: this.#notFound(req, params) };
    const permission = this.#store.grantPermission(audience, granted, level as PermissionLevel, req.now);
    return {
      mutated: true,
      response: {
        status: 200,
        json: {
          request: { params },
          data: permissionJson(permission),
          data_type: 'custom_audience_permission',
        },
      },
    };
  }

  /** DELETE …/permissions/:permission_id: revokes it, answering the permission with `deleted: true`. */
  #revokePermission(req: ApiRequest, base: Params): ApiResult {
    const audience = this.#liveAudience(req);
    if (!audience) return { mutated: false, response: this.#notFound(req, base) };
    const permission = audience.permissions.find((p) => p.id === req.permissionId && !p.deleted);
    if (!permission) {
      return {
        mutated: false,
        response: singleError(
          404,
          'NOT_FOUND',
          `Custom audience permission ${req.permissionId} was not found`,
          base,
        ),
      };
    }
    permission.deleted = true;
    permission.updatedAt = req.now;
    return {
      mutated: true,
      response: {
        status: 200,
        json: {
          request: { params: base },
          data: permissionJson(permission),
          data_type: 'custom_audience_permission',
        },
      },
    };
  }

  /**
   * GET …/custom_audiences/:id/targeted: the campaigns and line items targeting the audience, as
   * `[{campaign_id, campaign_name, line_items: [{id, name, servable}]}]`. The emulator has no campaigns,
   * so the list is always empty; the parameters are still checked.
   */
  #targeted(req: ApiRequest, base: Params): EmulatorResponse {
    const query = new QueryReader(req.query, ['with_active', 'cursor'], base, this.#switches);
    query.bool('with_active', true);
    const targeting: Array<{ createdAt: number; updatedAt: number; deleted: boolean; id: string }> = [];
    const { page, nextCursor } = sortAndPage(targeting, query);
    const audience = this.#liveAudience(req);
    if (!audience) return this.#notFound(req, query.echo);
    return { status: 200, json: { request: { params: query.echo }, next_cursor: nextCursor, data: page } };
  }

  #users(req: ApiRequest, base: Params): ApiResult {
    const audience = this.#liveAudience(req);
    if (!audience) return { mutated: false, response: this.#notFound(req, base) };
    const result = validateUsersRequest(req.contentType, req.body, req.bytes, req.now, this.#switches);
    if (!result.ok) {
      const json: Record<string, unknown> = { errors: result.errors };
      if (result.operationErrors) json.operation_errors = result.operationErrors;
      json.request = { params: base };
      return {
        mutated: false,
        response: { status: result.status, json },
        ...(result.operationCount !== undefined ? { operations: result.operationCount } : {}),
        ...(result.userCount !== undefined ? { users: result.userCount } : {}),
      };
    }
    const n = result.userCount;
    if (req.countMismatch()) {
      // Injected fault: X answered but did not take every user; the docs say to treat it as an error.
      return {
        mutated: false,
        operations: result.operationCount,
        users: n,
        response: {
          status: 200,
          json: { request: { params: base }, data: { success_count: Math.max(0, n - 1), total_count: n } },
        },
      };
    }
    for (const op of result.operations) {
      if (op.type === 'Update') this.#store.upsertMembers(audience, op.users, op.effectiveAt, op.expiresAt);
      else this.#store.deleteMembers(audience, op.users);
    }
    return {
      mutated: true,
      operations: result.operationCount,
      users: n,
      response: {
        status: 200,
        json: { request: { params: base }, data: { success_count: n, total_count: n } },
      },
    };
  }
}
