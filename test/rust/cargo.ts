/**
 * Where the Rust tests find cargo: the one on PATH (rustup's, say), else Debian's /usr/bin/cargo;
 * undefined when neither is there (the tests then skip, saying why). Builds share rust/target, so
 * a second run compiles nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const rustDir = fileURLToPath(new URL('../../../rust/', import.meta.url));

function findCargo(): string | undefined {
  try {
    execFileSync('cargo', ['--version'], { stdio: 'ignore' });
    return 'cargo';
  } catch {
    return existsSync('/usr/bin/cargo') ? '/usr/bin/cargo' : undefined;
  }
}

export const cargo = findCargo();
export const noCargo =
  cargo === undefined && 'cargo is not installed (scripts/test-deps.sh installs it)';
