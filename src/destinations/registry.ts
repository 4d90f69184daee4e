import type { Logger } from 'pino';
import type { DestinationConfig } from '../config/project-schema.js';
import type { Destination, DestinationObserver } from './destination.js';
import { createXAdsDestination } from './x-ads/x-ads-destination.js';

/** The only switch on destination kind: a configured destination to its implementation. */
export function createDestination(
  name: string,
  config: DestinationConfig,
  options: { logger: Logger; observer?: DestinationObserver },
): Destination {
  switch (config.type) {
    case 'x_ads':
      return createXAdsDestination(name, config, options);
  }
}
