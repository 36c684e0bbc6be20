// The finalizer each kind's controller holds (defaulted onto every created object by admission,
// so an object is never built before a delete would wait for its clean-up).
export const FINALIZERS = {
  network: 'n0stack.io/network',
  blockStorage: 'n0stack.io/blockstorage',
  virtualMachine: 'n0stack.io/virtualmachine',
  node: 'n0stack.io/node',
} as const;

/** The Ready reason a protection finalizer gives while dependants hold an object in deletion. */
export const DELETION_BLOCKED = 'WaitingForDependants';
