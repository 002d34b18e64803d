import { describe, expect, it } from 'vitest';
import {
  describeSensitive,
  sensitiveKind,
  summarizeChanges,
  type ChangeEntry,
  type SensitiveKind,
} from '../../src/domain/change-facts.js';

const entry = (overrides: Partial<ChangeEntry> & { path: string }): ChangeEntry => ({ added: 1, removed: 0, ...overrides });

describe('sensitiveKind', () => {
  const cases: Record<SensitiveKind, string[]> = {
    secrets: [
      '.env',
      '.env.local',
      '.env.production',
      'apps/web/.env.example',
      '.envrc',
      'certs/server.pem',
      'tls/private.key',
      'keys/client.p12',
      'keys/client.pfx',
      'id_rsa',
      'deploy/id_rsa.pub',
      'config/secrets.yaml',
      'k8s/SealedSecret.yaml',
      'client_secret.json',
      'config/secrets/prod.yaml',
      'aws/credentials',
      'src/credentialStore.ts',
      '.npmrc',
      'packages/x/.npmrc',
      '.netrc',
      '.pypirc',
      // Secrets outrank CI and auth.
      '.github/workflows/secrets.yml',
      'src/auth/secret-key.ts',
    ],
    ci: [
      '.github/workflows/ci.yml',
      '.github/workflows/release.yaml',
      '.github/actions/setup/action.yml',
      '.gitlab-ci.yml',
      '.circleci/config.yml',
      'Jenkinsfile',
      'ci/Jenkinsfile',
      'azure-pipelines.yml',
      '.travis.yml',
      '.buildkite/pipeline.yml',
      './.github/workflows/ci.yml',
      '.github\\workflows\\ci.yml',
    ],
    dependencies: [
      'package.json',
      'packages/api/package.json',
      'package-lock.json',
      'yarn.lock',
      'pnpm-lock.yaml',
      'npm-shrinkwrap.json',
      'bun.lockb',
      'requirements.txt',
      'requirements-dev.txt',
      'Pipfile',
      'Pipfile.lock',
      'poetry.lock',
      'pyproject.toml',
      'go.mod',
      'go.sum',
      'Cargo.toml',
      'crates/core/Cargo.lock',
      'Gemfile',
      'Gemfile.lock',
      'composer.json',
      'composer.lock',
      'pom.xml',
      'build.gradle',
      'app/build.gradle.kts',
      'src/App/App.csproj',
    ],
    migrations: [
      'migrations/0001_init.sql',
      'src/store/migrations.ts',
      'db/migrate/20260101000000_add_users.rb',
      'scripts/migrate.ts',
      'prisma/migrations/20260101_init/migration.sql',
      'src/db/add-users-migration.ts',
      'src/MigrationRunner.java',
      // Migrations outrank auth.
      'migrations/0002_add_sessions.sql',
    ],
    auth: [
      'src/auth.ts',
      'src/auth/index.ts',
      'src/middleware/requireAuth.ts',
      'src/Auth/Guard.cs',
      'src/oauth/callback.ts',
      'src/OAuthClient.ts',
      'src/oauth2-client.ts',
      'src/pages/login.tsx',
      'src/pages/LoginPage.tsx',
      'src/session.ts',
      'src/sessions/store.ts',
      'src/sessionStore.ts',
      'src/password-reset.ts',
      'src/hashPassword.ts',
      'src/jwt.ts',
      'src/verifyJWT.ts',
      'src/JWTVerifier.ts',
      'src/permissions.ts',
      'src/permission_check.py',
      'src/acl.go',
      'src/rbac/roles.ts',
      'src/crypto.ts',
      'src/utils/crypto/hash.ts',
      'src/token.ts',
      'src/accessToken.ts',
      'src/refresh_tokens.py',
      'src/AUTH_README.md',
      'src/authentication.ts',
      'src/authorization/policy.ts',
    ],
  };

  it.each(Object.entries(cases).flatMap(([kind, paths]) => paths.map((path) => ({ path, kind }))))('$path → $kind', ({ path, kind }) => {
    expect(sensitiveKind(path)).toBe(kind);
  });

  // Whole word parts only: a word that merely contains "auth", "token" or "session" is not auth.
  it.each([
    'src/author.ts',
    'src/authors/list.ts',
    'src/tokenizer.ts',
    'src/lexer/Tokenizer.java',
    'src/sessionless.ts',
    'src/passwordless-ui.ts',
    'docs/AUTHORS.md',
    'src/cryptocurrency.ts',
    'src/oracle.ts',
    'aclocal.m4',
    'src/loginfo.ts',
    'Dockerfile',
    'docker-compose.yml',
    '.github/CODEOWNERS',
    '.github/dependabot.yml',
    '.github/ISSUE_TEMPLATE/bug.md',
    'README.md',
    'src/index.ts',
    'src/package-info.ts',
    'docs/package.json.md',
    'src/lockfile.ts',
    'src/environment.ts',
    'src/keyboard.ts',
    'src/monkey.ts',
    'src/migrated-flag.ts',
    'tsconfig.json',
    '',
  ])('%s → none', (path) => {
    expect(sensitiveKind(path)).toBeUndefined();
  });
});

describe('summarizeChanges', () => {
  it('counts files, lines and binaries', () => {
    const summary = summarizeChanges([
      entry({ path: 'src/a.ts', added: 10, removed: 2 }),
      entry({ path: 'logo.png', added: null, removed: null }),
      entry({ path: 'src/b.ts', added: 0, removed: 7 }),
    ]);
    expect(summary).toMatchObject({ files: 3, added: 10, removed: 9, binary: 1 });
  });

  it('is empty for no entries', () => {
    expect(summarizeChanges([])).toEqual({ files: 0, added: 0, removed: 0, binary: 0, sensitive: [], largest: [] });
  });

  it('lists sensitive files in input order', () => {
    const { sensitive } = summarizeChanges([
      entry({ path: 'src/auth.ts' }),
      entry({ path: 'src/index.ts' }),
      entry({ path: 'package.json' }),
      entry({ path: '.github/workflows/ci.yml' }),
    ]);
    expect(sensitive).toEqual([
      { path: 'src/auth.ts', kind: 'auth' },
      { path: 'package.json', kind: 'dependencies' },
      { path: '.github/workflows/ci.yml', kind: 'ci' },
    ]);
  });

  it('flags a file renamed away from a sensitive path, naming both paths', () => {
    const { sensitive } = summarizeChanges([
      entry({ path: 'notes/old-config.txt', oldPath: '.env.production', added: 0, removed: 0 }),
      entry({ path: 'src/plain.ts', oldPath: 'src/other.ts' }),
    ]);
    expect(sensitive).toEqual([{ path: 'notes/old-config.txt', oldPath: '.env.production', kind: 'secrets' }]);
  });

  it('takes the higher-priority kind of the old and new path', () => {
    const { sensitive } = summarizeChanges([entry({ path: '.github/workflows/deploy.yml', oldPath: 'src/auth/deploy.yml' })]);
    expect(sensitive.map((s) => s.kind)).toEqual(['ci']);
  });

  it('lists the five largest text files by lines changed, ties in input order', () => {
    const { largest } = summarizeChanges([
      entry({ path: 'a', added: 1, removed: 1 }),
      entry({ path: 'b', added: 50, removed: 0 }),
      entry({ path: 'big.bin', added: null, removed: null }),
      entry({ path: 'c', added: 10, removed: 30 }),
      entry({ path: 'renamed', added: 0, removed: 0 }),
      entry({ path: 'd', added: 3, removed: 0 }),
      entry({ path: 'e', added: 2, removed: 1 }),
      entry({ path: 'f', added: 0, removed: 100 }),
    ]);
    expect(largest).toEqual([
      { path: 'f', added: 0, removed: 100 },
      { path: 'b', added: 50, removed: 0 },
      { path: 'c', added: 10, removed: 30 },
      { path: 'd', added: 3, removed: 0 },
      { path: 'e', added: 2, removed: 1 },
    ]);
  });
});

describe('describeSensitive', () => {
  it('counts per kind in priority order', () => {
    expect(
      describeSensitive([
        { kind: 'auth' },
        { kind: 'dependencies' },
        { kind: 'ci' },
        { kind: 'dependencies' },
      ]),
    ).toBe('touches CI config (1), dependencies (2), auth (1)');
  });

  it('names every kind', () => {
    expect(
      describeSensitive([{ kind: 'migrations' }, { kind: 'secrets' }, { kind: 'auth' }, { kind: 'ci' }, { kind: 'dependencies' }]),
    ).toBe('touches secrets (1), CI config (1), dependencies (1), migrations (1), auth (1)');
  });

  it('is empty when nothing is sensitive', () => {
    expect(describeSensitive([])).toBe('');
  });

  it('reads a summary end to end', () => {
    const { sensitive } = summarizeChanges([
      entry({ path: 'package.json' }),
      entry({ path: 'yarn.lock' }),
      entry({ path: 'src/login.ts' }),
      entry({ path: 'src/ui.ts' }),
    ]);
    expect(describeSensitive(sensitive)).toBe('touches dependencies (2), auth (1)');
  });
});
