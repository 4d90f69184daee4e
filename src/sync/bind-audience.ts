import type { Logger } from 'pino';
import type { ResolvedActivation } from '../config/resolve-activation.js';
import { readOwnerMark, withOwnerMark } from '../destinations/audience-owner.js';
import type { AudienceInfo, Destination } from '../destinations/destination.js';
import type { StateStore } from '../diff/types.js';
import { AudienceMissingError, AudienceOwnedError, ConfigError } from '../errors.js';
import type { SyncOptions } from './types.js';

export interface BindContext {
  activation: ResolvedActivation;
  options: Pick<SyncOptions, 'signal' | 'fullResync' | 'recreate' | 'adopt'>;
  logger: Logger;
  state: StateStore;
  destination: Destination;
  now: () => Date;
}

/**
 * The audience of the activation: the bound one, else the configured id, else the one with the
 * configured name, else a new one. The binding is saved at once, so no run ever creates a second.
 *
 * Ownership: an audience is fed by one activation of one state. Its description carries the owner
 * mark (`tailor: <owner id>`, src/destinations/audience-owner.ts; the owner id names this state and
 * activation: StateStore.ownerId), written when Tailor creates it or takes it. An audience whose mark
 * names another owner, bound or not, is refused; so is an existing unmarked one X reports members
 * for; `adopt` (`tailor sync --adopt`) takes either over, and the previous owner's runs are then
 * refused. A bound audience without a mark (bound before marks existed) is marked by its next run.
 */
export async function bindAudience(run: BindContext): Promise<string> {
  const { activation, options, logger, state, destination } = run;
  const accountId = activation.destination.account_id;
  const signal = options.signal;
  const ownerId = await state.ownerId(activation.id);
  const binding = await state.getBinding(activation.id);
  /** Checks the audience's owner mark; writes this activation's when it is missing or adopted. */
  const claim = async (info: AudienceInfo, bound: boolean): Promise<void> => {
    const mark = readOwnerMark(info.description);
    if (mark === ownerId) return;
    const elsewhere = bound
      ? `give activation ${activation.id} another audience in tailor.yml and run \`tailor state reset ${activation.id}\``
      : `give activation ${activation.id} another audience in tailor.yml`;
    const adopt = `run \`tailor sync ${activation.id} --adopt\` to take it over (the other owner's runs are then refused), or ${elsewhere}`;
    if (!options.adopt && mark !== null) {
      throw new AudienceOwnedError(
        `audience ${info.id} ("${info.name}") is fed by another activation or another Tailor project (its description names owner ${mark}; activation ${activation.id} of this state is ${ownerId})`,
        { hint: adopt },
      );
    }
    if (!options.adopt && !bound && info.size !== null && info.size > 0) {
      throw new AudienceOwnedError(
        `audience ${info.id} ("${info.name}") already has about ${info.size} members and no Tailor owner mark: something else may feed it`,
        { hint: adopt },
      );
    }
    await destination.updateAudienceDescription(info.id, withOwnerMark(info.description, ownerId), signal);
    if (mark !== null || !bound)
      logger.warn({ audience: info.id, previousOwner: mark }, 'took over the audience');
    else logger.info({ audience: info.id }, 'wrote the owner mark into the bound audience');
  };
  const create = (name: string, description: string) =>
    destination.createAudience(name, withOwnerMark(description, ownerId), signal);
  const save = async (audienceId: string, audienceName: string) => {
    await state.saveBinding({
      activationId: activation.id,
      destination: activation.destinationName,
      accountId,
      audienceId,
      audienceName,
      boundAt: run.now(),
    });
    return audienceId;
  };
  if (binding) {
    if (binding.destination !== activation.destinationName || binding.accountId !== accountId) {
      throw new ConfigError(
        `activation ${activation.id} is bound to audience ${binding.audienceId} of account ${binding.accountId} (destination ${binding.destination}), not to destination ${activation.destinationName} (account ${accountId})`,
        {
          hint: `run \`tailor state reset ${activation.id}\` to bind it afresh (its next run is a full sync)`,
        },
      );
    }
    if ('id' in activation.audience && activation.audience.id !== binding.audienceId) {
      throw new ConfigError(
        `activation ${activation.id} is bound to audience ${binding.audienceId}, but tailor.yml names audience ${activation.audience.id}`,
        { hint: `run \`tailor state reset ${activation.id}\` to move it to the audience tailor.yml names` },
      );
    }
    const info = await destination.getAudience(binding.audienceId, signal);
    if (info && !info.deleted) {
      await claim(info, true);
      return binding.audienceId;
    }
    if (!(options.fullResync && options.recreate)) {
      throw new AudienceMissingError(
        `audience ${binding.audienceId} ("${binding.audienceName}") of activation ${activation.id} no longer exists at X (it was deleted)`,
        {
          hint: `run \`tailor sync ${activation.id} --full-resync --recreate\` to create a new audience and send every member to it`,
        },
      );
    }
    if ('id' in activation.audience) {
      throw new ConfigError(
        `activation ${activation.id} names audience ${activation.audience.id}, which X deleted; Tailor cannot recreate an audience by id`,
        { hint: 'set `audience: { name: ... }` (or another existing audience id) in tailor.yml' },
      );
    }
    const created = await create(activation.audience.name, activation.audience.description);
    logger.warn({ audience: created.id }, 'the bound audience was deleted at X; created a new one');
    // The old audience's members are gone with it: forget them so that everything is sent again.
    await state.reset(activation.id);
    return save(created.id, created.name);
  }
  if ('id' in activation.audience) {
    const info = await destination.getAudience(activation.audience.id, signal);
    if (!info || info.deleted) {
      throw new AudienceMissingError(
        `audience ${activation.audience.id} named by activation ${activation.id} does not exist in account ${accountId}`,
        {
          hint: 'check the id with `tailor audiences`, or use `audience: { name: ... }` to have one created',
        },
      );
    }
    await claim(info, false);
    return save(info.id, info.name);
  }
  const { name, description } = activation.audience;
  const found = await destination.findAudienceByName(name, signal);
  if (found) {
    await claim(found, false);
    logger.info({ audience: found.id }, 'bound to the existing audience of that name');
    return save(found.id, found.name);
  }
  const created = await create(name, description);
  logger.info({ audience: created.id }, 'created the audience');
  return save(created.id, created.name);
}
