import { afterAll, beforeAll } from 'vitest';
import { pgliteContractWarehouses } from '../helpers/warehouse.js';
import { defineSourceContract } from './source-contract.js';

// initdb once per file; each test gets a copy of that data directory.
const warehouses = pgliteContractWarehouses();
beforeAll(() => warehouses.setup());
afterAll(() => warehouses.teardown());

defineSourceContract('pglite', () => warehouses.create());
