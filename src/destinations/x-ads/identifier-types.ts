/**
 * The keys of a user object on X's Custom Audience users endpoint
 * (https://docs.x.com/x-ads-api/audiences/reference). Everything but
 * `partner_user_id` is normalized and SHA-256 hashed before it is sent.
 */
export const X_IDENTIFIER_TYPES = [
  'email',
  'phone_number',
  'handle',
  'twitter_id',
  'device_id',
  'partner_user_id',
] as const;
export type XIdentifierType = (typeof X_IDENTIFIER_TYPES)[number];
