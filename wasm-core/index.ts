// Entry of the core module: re-exports what the host calls.
export { XREGS, FREGS } from './cpu/state';
