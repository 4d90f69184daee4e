/**
 * The strict local X Ads API emulator: how CI, the demo and users without credentials exercise Tailor's
 * X Ads client. It stands apart from `src/destinations/` on purpose and never imports the client
 * (sharing code would let a shared bug pass): it exists to judge the client's protocol. See docs/emulator.md.
 */
import { Emulator } from './server.js';
import type { EmulatorOptions, RunningEmulator } from './types.js';

export {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  FAULT_KINDS,
  ALL_FAULT_KINDS,
  type EmulatorAdmin,
  type EmulatorOptions,
  type EmulatorSeed,
  type FaultKind,
  type FaultSpec,
  type MembershipView,
  type RateLimitOptions,
  type RequestLogEntry,
  type RunningEmulator,
  type SeedAccount,
  type SeedApp,
  type SeedCredential,
  type SeedUser,
  type UsersAnswer,
  type UsersAnswerListener,
} from './types.js';
export { DEFAULT_SWITCHES, type EmulatorSwitches } from './switches.js';
export { MAX_BODY_BYTES, MAX_OPERATIONS } from './users-validation.js';

/** Starts an emulator (default: 127.0.0.1, an ephemeral port, the demo account and credentials). */
export async function startEmulator(options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const emulator = await Emulator.create(options);
  return emulator.listen();
}
