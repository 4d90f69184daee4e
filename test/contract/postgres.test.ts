import { postgresContractWarehouse } from '../helpers/warehouse.js';
import { defineSourceContract } from './source-contract.js';

// Each test gets its own data and state schemas on the test server, dropped afterwards.
defineSourceContract('postgres', postgresContractWarehouse);
