import { z } from 'zod';

/** `mirror`: the audience holds exactly the segment (adds and removes); `upsert`: adds only. */
export const activationModeSchema = z.enum(['mirror', 'upsert']);
export type ActivationMode = z.infer<typeof activationModeSchema>;
