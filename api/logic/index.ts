// Pure controller logic: no I/O, no clocks except those passed in.
export * from './quantity';
export * from './resources';
export * from './scheduler';
export * from './ipam';
export * from './network';
export * from './vm';
