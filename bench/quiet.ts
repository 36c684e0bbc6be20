// Imported first by every benchmark: modules create their loggers when loaded, so the level must
// be set before any of them is; info lines per reconcile would swamp the tables (and cost CPU).
process.env.N0STACK_LOG_LEVEL ??= 'error';
export {};
