// Imported first by every e2e test: in-process components log warnings and errors only (jest
// prints each log line with a stack frame), unless N0STACK_LOG_LEVEL asks for more. Child
// processes log at info into their own files under the cloud's directory.
process.env.N0STACK_LOG_LEVEL ??= 'warn';
export {};
