import type { Command } from 'commander';
import type { CommandHandler } from '../context.js';
import { defineActivate } from './activate.js';
import { defineAudiences } from './audiences.js';
import { defineCheck } from './check.js';
import { defineEmulator } from './emulator.js';
import { defineHistory } from './history.js';
import { defineInit } from './init.js';
import { definePlan } from './plan.js';
import { defineSchedule } from './schedule.js';
import { defineState } from './state.js';
import { defineStatus } from './status.js';
import { defineSync } from './sync.js';

// Each command's handler has its own argument list.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Wrap = (handler: CommandHandler<any[]>) => (...args: any[]) => Promise<void>;

/** Every command of DESIGN.md's CLI table, one thin file each. */
export function registerCommands(program: Command, wrap: Wrap): void {
  defineInit(program, wrap);
  defineCheck(program, wrap);
  definePlan(program, wrap);
  defineSync(program, wrap);
  defineActivate(program, wrap);
  defineSchedule(program, wrap);
  defineStatus(program, wrap);
  defineHistory(program, wrap);
  defineAudiences(program, wrap);
  defineState(program, wrap);
  defineEmulator(program, wrap);
}
