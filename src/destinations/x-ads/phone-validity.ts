import { Metadata, type PhoneNumber } from 'libphonenumber-js/max';

/**
 * `isValidPhone(phone)` gives the same answer as `phone.isValid()` for a number parsed with the `max`
 * metadata, at about a sixth of the cost (bench/hash-micro.ts).
 *
 * Why it exists: libphonenumber's `isValid()` runs `isValidNumber` -> `getNumberType`, which match the
 * national number against the region's patterns through `matchesEntirely`, and that builds
 * `new RegExp('^(?:' + pattern + ')$')` on every call. A US fixed-line pattern is about 900 characters,
 * so each check concatenates, flattens and hashes that string to find V8's cached regexp, then allocates
 * a RegExp; `isValid()` also wraps the metadata in two fresh `Metadata` objects. That was a quarter of the
 * time spent per phone number.
 *
 * How it stays identical: this is the same decision, step by step, as libphonenumber-js's
 * `source/isValid.js` (with `{ v2: true }`) and `source/helpers/getNumberType.js` (1.13.x), read from the
 * same metadata through the same `Metadata` object; the only difference is that each anchored RegExp is
 * built once per pattern text and kept. A RegExp without the `g` or `y` flag keeps no state between
 * `test` calls, so reusing it cannot change an answer. test/unit/identifiers.test.ts checks the two
 * against each other over every region, so an upgrade of the library that changes its rule fails there.
 */

/** The members of libphonenumber's `Metadata` used here: present at runtime, left out of its typings. */
interface MetadataInternals {
  selectNumberingPlan(countryOrCallingCode: string): void;
  hasTypes(): boolean;
  nationalNumberPattern(): string;
  type(type: NumberType): { pattern(): string; possibleLengths(): number[] | undefined } | undefined;
}

/** `getNumberType`'s order: fixed line first, then these (its `NON_FIXED_LINE_PHONE_TYPES`). */
const NUMBER_TYPES = [
  'FIXED_LINE',
  'MOBILE',
  'PREMIUM_RATE',
  'TOLL_FREE',
  'SHARED_COST',
  'VOIP',
  'PERSONAL_NUMBER',
  'PAGER',
  'UAN',
  'VOICEMAIL',
] as const;
type NumberType = (typeof NUMBER_TYPES)[number];

// One instance, re-pointed at a numbering plan per call as libphonenumber does with its own (JS runs
// one call at a time, and nothing below yields).
const metadata = new Metadata() as unknown as MetadataInternals;

const anchored = new Map<string, RegExp>();

/** libphonenumber's `matchesEntirely(text, pattern)`, with the RegExp built once per pattern. */
function matchesEntirely(text: string, pattern: string): boolean {
  let regexp = anchored.get(pattern);
  if (regexp === undefined) {
    regexp = new RegExp('^(?:' + pattern + ')$');
    anchored.set(pattern, regexp);
  }
  return regexp.test(text);
}

/** libphonenumber's `isNumberTypeEqualTo`. */
function isNumberType(nationalNumber: string, type: NumberType): boolean {
  const definition = metadata.type(type);
  if (!definition || !definition.pattern()) return false;
  const lengths = definition.possibleLengths();
  if (lengths && lengths.indexOf(nationalNumber.length) < 0) return false;
  return matchesEntirely(nationalNumber, definition.pattern());
}

/** Same result as `phone.isValid()` (see the module comment). */
export function isValidPhone(phone: PhoneNumber): boolean {
  // isValidNumber: the plan of the number's region, or of its calling code when no region was found.
  const region: string = phone.country || phone.countryCallingCode;
  // getNumberType returns undefined (not valid) when neither is known.
  if (!region) return false;
  metadata.selectNumberingPlan(region);
  const nationalNumber = phone.nationalNumber;
  // isValidNumber, for metadata without per-type patterns: the national pattern decides alone.
  if (!metadata.hasTypes()) return matchesEntirely(nationalNumber, metadata.nationalNumberPattern());
  // getNumberType: a number outside the national pattern has no type; otherwise it is valid as soon as
  // one type matches (fixed line first; every branch after a fixed-line match returns a type).
  if (!matchesEntirely(nationalNumber, metadata.nationalNumberPattern())) return false;
  return NUMBER_TYPES.some((type) => isNumberType(nationalNumber, type));
}
