import { type CountryCode, parsePhoneNumberFromString } from 'libphonenumber-js/max';

/**
 * A realistic, deterministic sample of customers and orders for the embedded demo: the kind of data an
 * e-commerce warehouse holds, warts included (mixed phone formats, stray capitals and spaces, shared
 * family emails, values that cannot be identifiers). Everything comes from a seeded PRNG, so every
 * clone builds the same warehouse and `npm run demo:churn` the same changes.
 */

/** mulberry32: tiny, fast, good enough for sample data, and the same on every platform. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rng = () => number;

export interface Customer {
  customer_id: number;
  first_name: string;
  last_name: string;
  email: string | null;
  phone: string | null;
  x_handle: string | null;
  x_user_id: string | null;
  device_id: string | null;
  country: string;
  created_at: string;
}

export interface Order {
  order_id: number;
  customer_id: number;
  amount: string;
  ordered_at: string;
}

const FIRST = [
  'olivia',
  'liam',
  'emma',
  'noah',
  'amelia',
  'oliver',
  'ava',
  'elijah',
  'sophia',
  'lucas',
  'mia',
  'mateo',
  'isla',
  'jack',
  'charlotte',
  'leo',
  'grace',
  'henry',
  'chloe',
  'james',
  'zoe',
  'william',
  'ruby',
  'ethan',
  'lily',
  'aria',
  'samuel',
  'hannah',
  'daniel',
  'nora',
  'hugo',
  'lena',
  'finn',
  'mila',
  'oscar',
  'emily',
  'arjun',
  'priya',
  'wei',
  'yuki',
  'sofia',
  'luca',
  'ines',
  'felix',
  'clara',
  'max',
  'anna',
  'tom',
];
const LAST = [
  'smith',
  'johnson',
  'williams',
  'brown',
  'jones',
  'garcia',
  'miller',
  'davis',
  'wilson',
  'taylor',
  'thomas',
  'moore',
  'martin',
  'lee',
  'walker',
  'hall',
  'young',
  'king',
  'wright',
  'scott',
  'green',
  'baker',
  'adams',
  'nguyen',
  'patel',
  'kim',
  'chen',
  'singh',
  'murphy',
  'kelly',
  'obrien',
  'muller',
  'schmidt',
  'rossi',
  'dubois',
  'tanaka',
  'silva',
  'costa',
  'novak',
  'jensen',
  'evans',
  'roberts',
  'clarke',
  'campbell',
];
const DOMAINS = [
  'gmail.com',
  'gmail.com',
  'gmail.com',
  'yahoo.com',
  'outlook.com',
  'hotmail.com',
  'icloud.com',
  'proton.me',
  'bigpond.com',
  'optusnet.com.au',
  'btinternet.com',
  'web.de',
  'gmx.de',
  'example.org',
];
/** Share of customers per country; AU matters to the `customers_au` model. */
const COUNTRIES: Array<[string, number]> = [
  ['US', 0.52],
  ['AU', 0.11],
  ['GB', 0.12],
  ['CA', 0.1],
  ['DE', 0.08],
  ['FR', 0.04],
  ['JP', 0.03],
];

/** The sample's "today": orders fall in the two years before it, so the demo never depends on the clock. */
export const SAMPLE_END = Date.UTC(2026, 5, 30);
const DAY = 86_400_000;
const SAMPLE_DAYS = 730;

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

function int(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

function digits(rng: Rng, count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += String(Math.floor(rng() * 10));
  return out;
}

function hex(rng: Rng, count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += Math.floor(rng() * 16).toString(16);
  return out;
}

function country(rng: Rng): string {
  let r = rng();
  for (const [code, share] of COUNTRIES) {
    if (r < share) return code;
    r -= share;
  }
  return 'US';
}

const US_AREAS = [
  '212',
  '213',
  '305',
  '312',
  '415',
  '503',
  '617',
  '646',
  '702',
  '713',
  '818',
  '917',
  '206',
  '404',
];
const CA_AREAS = ['416', '604', '514', '403', '613'];

/** A number as people type it: national or international, spaced, dashed or bracketed. */
function candidatePhone(rng: Rng, code: string): { text: string; region: CountryCode } {
  const style = rng();
  switch (code) {
    case 'US':
    case 'CA': {
      const area = pick(rng, code === 'US' ? US_AREAS : CA_AREAS);
      const exchange = String(int(rng, 201, 989));
      const line = digits(rng, 4);
      const text =
        style < 0.3
          ? `(${area}) ${exchange}-${line}`
          : style < 0.55
            ? `${area}-${exchange}-${line}`
            : style < 0.7
              ? `${area}${exchange}${line}`
              : style < 0.85
                ? `+1 ${area} ${exchange} ${line}`
                : `+1${area}${exchange}${line}`;
      return { text, region: code };
    }
    case 'AU': {
      // Mobiles: 04xx xxx xxx nationally, +61 4xx xxx xxx internationally.
      const rest = `${int(rng, 0, 9)}${int(rng, 0, 9)}`;
      const a = digits(rng, 3);
      const b = digits(rng, 3);
      const text =
        style < 0.45
          ? `04${rest} ${a} ${b}`
          : style < 0.6
            ? `04${rest}${a}${b}`
            : style < 0.9
              ? `+61 4${rest} ${a} ${b}`
              : `0061 4${rest} ${a} ${b}`;
      return { text, region: 'AU' };
    }
    case 'GB': {
      const rest = `7${int(rng, 4, 9)}${digits(rng, 2)}`;
      const tail = digits(rng, 6);
      const text = style < 0.15 ? `0${rest} ${tail}` : `+44 ${rest} ${tail}`;
      return { text, region: 'GB' };
    }
    case 'DE': {
      const prefix = pick(rng, ['151', '152', '160', '162', '170', '171', '176', '177']);
      const tail = digits(rng, prefix.startsWith('15') ? 8 : 7);
      const text = style < 0.15 ? `0${prefix} ${tail}` : `+49 ${prefix} ${tail}`;
      return { text, region: 'DE' };
    }
    case 'FR': {
      const text = `+33 ${pick(rng, ['6', '7'])} ${digits(rng, 2)} ${digits(rng, 2)} ${digits(rng, 2)} ${digits(rng, 2)}`;
      return { text, region: 'FR' };
    }
    default: {
      const text = `+81 90-${digits(rng, 4)}-${digits(rng, 4)}`;
      return { text, region: 'JP' };
    }
  }
}

/** A valid phone number for the country (tried against libphonenumber's full metadata), or a bad one. */
function phone(rng: Rng, code: string): string | null {
  const r = rng();
  if (r < 0.12) return null;
  if (r < 0.14) return pick(rng, ['12345', 'n/a', '000-000-0000', '555-0100', 'call me']);
  for (let attempt = 0; attempt < 20; attempt++) {
    const { text, region } = candidatePhone(rng, code);
    if (parsePhoneNumberFromString(text, region)?.isValid()) return text;
  }
  return null;
}

function email(rng: Rng, first: string, last: string, id: number): string | null {
  const r = rng();
  if (r < 0.04) return null;
  const local = pick(rng, [`${first}.${last}`, `${first}${last}`, `${first[0]}${last}`, `${first}_${last}`]);
  const address = `${local}${id % 7 === 0 ? '' : id % 997}@${pick(rng, DOMAINS)}`;
  if (r < 0.06)
    return pick(rng, [address.replace('@', ''), `${address}.`, `${local}@`, address.replace('@', ' at ')]);
  // People type capitals and stray spaces; X's rule (trim, lowercase) makes them the same member.
  if (r < 0.16) return `${first[0]!.toUpperCase()}${address.slice(1)}`;
  if (r < 0.19) return ` ${address} `;
  return address;
}

function handle(rng: Rng, first: string, last: string): string | null {
  const r = rng();
  if (r > 0.42) return null;
  // About 4% use a dot, which X usernames cannot hold: counted invalid.
  const separator = rng() < 0.04 ? '.' : pick(rng, ['_', '']);
  const base = `${first}${separator}${last}`.slice(0, 12) + String(int(rng, 0, 99));
  if (base.includes('.')) return base; // not a valid X username: counted invalid
  return r < 0.2 ? `@${base}` : r < 0.3 ? base.toUpperCase() : base;
}

function deviceId(rng: Rng): string | null {
  const r = rng();
  if (r > 0.46) return null;
  const uuid = `${hex(rng, 8)}-${hex(rng, 4)}-4${hex(rng, 3)}-${pick(rng, ['8', '9', 'a', 'b'])}${hex(rng, 3)}-${hex(rng, 12)}`;
  if (r < 0.01) return '00000000-0000-0000-0000-000000000000'; // iOS with ad tracking limited: names nobody
  if (r < 0.2) return uuid.toUpperCase(); // IDFA as iOS reports it
  if (r < 0.38) return uuid; // Google advertising id
  return hex(rng, 16); // Android ID
}

function xUserId(rng: Rng): string | null {
  if (rng() > 0.36) return null;
  return String(int(rng, 1, 9)) + digits(rng, int(rng, 7, 18));
}

/** One customer, drawn from `rng`. `sharedEmails` supplies family addresses now and then. */
export function makeCustomer(rng: Rng, id: number, sharedEmails: Array<string | null>): Customer {
  const first = pick(rng, FIRST);
  const last = pick(rng, LAST);
  const code = country(rng);
  let mail = email(rng, first, last, id);
  // About 2% share an address with someone else (a family or a shared inbox).
  if (sharedEmails.length > 0 && rng() < 0.02) mail = pick(rng, sharedEmails);
  sharedEmails.push(mail);
  if (sharedEmails.length > 500) sharedEmails.shift();
  const createdAt = new Date(SAMPLE_END - int(rng, SAMPLE_DAYS, SAMPLE_DAYS + 900) * DAY);
  return {
    customer_id: id,
    first_name: first,
    last_name: last,
    email: mail,
    phone: phone(rng, code),
    x_handle: handle(rng, first, last),
    x_user_id: xUserId(rng),
    device_id: deviceId(rng),
    country: code,
    created_at: createdAt.toISOString(),
  };
}

/**
 * A customer's orders. Each customer is active until some day (a quarter went quiet over six months
 * before the sample's end: the lapsed segment); about 2% of orders are over $1,000 (the VIP segment).
 */
export function makeOrders(rng: Rng, customerId: number, nextOrderId: () => number): Order[] {
  const count = rng() < 0.08 ? 0 : int(rng, 1, 6);
  const lastActive = rng() < 0.28 ? int(rng, 185, SAMPLE_DAYS) : int(rng, 0, 170);
  const orders: Order[] = [];
  for (let i = 0; i < count; i++) {
    const daysAgo = i === 0 ? lastActive : int(rng, lastActive, SAMPLE_DAYS);
    const big = rng() < 0.02;
    const amount = big ? 1000 + rng() * 4000 : Math.exp(3 + rng() * 2.5);
    orders.push({
      order_id: nextOrderId(),
      customer_id: customerId,
      amount: amount.toFixed(2),
      ordered_at: new Date(SAMPLE_END - daysAgo * DAY - int(rng, 0, 86_399) * 1000).toISOString(),
    });
  }
  return orders;
}

/** The whole initial sample. */
export function generateSample(seed: number, customers: number): { customers: Customer[]; orders: Order[] } {
  const rng = prng(seed);
  const shared: Array<string | null> = [];
  const out: Customer[] = [];
  const orders: Order[] = [];
  let orderId = 0;
  const nextOrderId = () => ++orderId;
  for (let id = 1; id <= customers; id++) {
    out.push(makeCustomer(rng, id, shared));
    orders.push(...makeOrders(rng, id, nextOrderId));
  }
  return { customers: out, orders };
}
