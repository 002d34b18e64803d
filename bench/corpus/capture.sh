#!/usr/bin/env bash
# Captures the compaction corpus by running real tools; see bench/README.md. Not run by
# `npm run bench` (it needs the npm registry and takes minutes): the captured files are
# committed, with a hand-written `<name>.keep` beside each listing the lines that must survive.
# Usage: bash bench/corpus/capture.sh   (from the repository root; writes bench/corpus/*.log)
set -uo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$OUT/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export npm_config_fund=false npm_config_update_notifier=false

# A JavaScript project with jest, installed from the registry (also the npm logs).
mkdir -p "$TMP/js/src" "$TMP/js/test" && cd "$TMP/js" || exit 1
npm init -y >/dev/null
npm install --loglevel=http jest@29.7.0 >"$OUT/npm-install.log" 2>&1
cp -r "$OUT/fixtures/jest/." "$TMP/js/"
FORCE_COLOR=1 npx jest --ci --verbose >"$OUT/jest-failures.log" 2>&1
# package.json now asks for a package the lockfile lacks: npm ci refuses, after its checks.
node -e 'const p=require("./package.json");p.dependencies={...p.dependencies,"left-pad":"^1.3.0"};require("fs").writeFileSync("package.json",JSON.stringify(p,null,2))'
rm -rf node_modules
npm ci --loglevel=verbose >"$OUT/npm-ci.log" 2>&1

# pytest from Debian (python3-pytest), verbose as agents run it.
mkdir -p "$TMP/py" && cp -r "$OUT/fixtures/pytest/." "$TMP/py/" && cd "$TMP/py" || exit 1
python3 -m pytest -v >"$OUT/pytest-failures.log" 2>&1

# nightshift itself with a renamed field: tsc errors across the code base, and vitest failures
# from a bug planted in the domain code.
mkdir -p "$TMP/ns" && cd "$TMP/ns" || exit 1
cp -r "$ROOT/src" "$ROOT/tests" "$ROOT/prompts" "$ROOT/package.json" "$ROOT/tsconfig.json" "$ROOT/tsconfig.build.json" "$ROOT/vitest.config.ts" .
ln -s "$ROOT/node_modules" node_modules
sed -i 's/readonly prNumber: number | null;/readonly pullNumber: number | null;/' src/store/items.ts
node_modules/.bin/tsc --noEmit --pretty true >"$OUT/tsc-errors.log" 2>&1
sed -i 's/readonly pullNumber: number | null;/readonly prNumber: number | null;/' src/store/items.ts
sed -i 's/return Math.ceil(new TextEncoder().encode(JSON.stringify(request)).length \/ 3) + HIDDEN_PROMPT_TOKENS;/return Math.ceil(new TextEncoder().encode(JSON.stringify(request)).length \/ 4) + HIDDEN_PROMPT_TOKENS;/' src/domain/pricing.ts
sed -i "s/% MINUTES_PER_DAY) + 1;/% MINUTES_PER_DAY);/" src/domain/peak-hours.ts
FORCE_COLOR=1 node_modules/.bin/vitest run tests/domain tests/llm tests/telegram/format.test.ts >"$OUT/vitest-failures.log" 2>&1

# A long git log.
git -C "$ROOT" log --stat --no-color 52c7b1d >"$OUT/git-log.log" 2>&1

# A noisy build on a pseudo-terminal (progress bars, spinners, redraws): fetch, clone, install, bundle.
mkdir -p "$TMP/site" && cp -r "$OUT/fixtures/site/." "$TMP/site/" && cd "$TMP/site" || exit 1
node gen.mjs
ROOT_REPO="$ROOT" script -qec "bash build.sh" /dev/null >"$OUT/noisy-build.log" 2>&1
echo "captured into $OUT"
