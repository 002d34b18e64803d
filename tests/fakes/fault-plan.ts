// The stand-in ships with the sandbox (src/sandbox/); tests and benchmarks keep importing it from here.
export * from '../../src/sandbox/fault-plan.js';
