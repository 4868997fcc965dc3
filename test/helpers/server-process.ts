/**
 * Running a test server (test/es-server, test/s3-server, test/rds-server) as a child process, so that a test
 * can SIGKILL the process under test while the server — and what it holds — lives on. The server prints one
 * JSON line on stdout once it listens; `stop` sends SIGTERM, then SIGKILL after 3 s, and resolves once the
 * process is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServerProcess<T> {
  /** The server's first line, parsed. */
  info: T;
  child: ChildProcess;
  pid: number;
  /** What the server wrote on stderr so far (for failure messages). */
  stderr(): string;
  stop(): Promise<void>;
}

/** `lifeline`: keep the child's stdin open, for a server that exits when it closes (this process died without stopping it). */
export async function spawnServerProcess<T>(
  name: string,
  script: string,
  args: string[],
  opts: { startTimeoutMs?: number; lifeline?: boolean } = {},
): Promise<ServerProcess<T>> {
  const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: [opts.lifeline ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const info = await new Promise<T>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${name} did not start within ${startTimeoutMs} ms: ${stderr}`));
      }, startTimeoutMs);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const nl = out.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        try {
          resolve(JSON.parse(out.slice(0, nl)) as T);
        } catch {
          reject(new Error(`${name} printed an unexpected first line: ${out.slice(0, nl)}`));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited before listening (${code ?? signal}): ${stderr}`));
      });
    });
    return {
      info,
      child,
      pid: child.pid!,
      stderr: () => stderr,
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      },
    };
  } catch (err) {
    await exited;
    throw err;
  }
}
