// The agent's drivers: one module per external tool.
export * from './types';
export * from './fsutil';
export * from './qemuimg';
export * from './qmp';
export * from './qemu';
export * from './fetch';
export * from './cloudinit';
