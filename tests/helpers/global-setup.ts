import { execFileSync } from 'node:child_process';

// Integration tests run the compiled entry point (`node dist/main.js`), exactly what
// `npm start` and the Docker image run, so build it once before any test file starts.
export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
