export { E1000, type E1000Options, type E1000State } from './device.js';
