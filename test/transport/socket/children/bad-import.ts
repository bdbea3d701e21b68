// @ts-expect-error: the point is a module that does not exist.
await import('./no-such-module.js');
