// The git helpers ship with the sandbox (`npm run sandbox` creates its sample repository with
// them); tests keep importing them from here.
export * from '../../src/sandbox/bare-repo.js';
