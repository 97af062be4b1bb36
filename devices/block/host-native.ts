/** The addon loader moved to devices/host-native.ts (the balloon uses it too). */
export { loadHostNative, type HostNative, type HostNativeResult } from '../host-native.js';
