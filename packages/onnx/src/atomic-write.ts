// Writing a file so that readers see the old content or the complete new one, never a part: write a temp
// file in the target's folder, fsync, rename over the target, fsync the folder. On failure, remove the temp.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The file operations the writer uses; tests inject failing ones. */
export interface WriteFiles {
  open(file: string): number;
  write(fd: number, bytes: Uint8Array, position: number): void;
  fsync(fd: number): void;
  close(fd: number): void;
  rename(from: string, to: string): void;
  /** A second name for an existing file (a hard link); throws ENOENT when `existing` does not exist. */
  link(existing: string, newPath: string): void;
  unlink(file: string): void;
  fsyncDir(dir: string): void;
}

export const nodeWriteFiles: WriteFiles = {
  open: (file) => fs.openSync(file, 'wx', 0o644),
  write: (fd, bytes, position) => {
    for (let done = 0; done < bytes.length; ) {
      done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
    }
  },
  fsync: (fd) => fs.fsyncSync(fd),
  close: (fd) => fs.closeSync(fd),
  rename: (from, to) => fs.renameSync(from, to),
  link: (existing, newPath) => fs.linkSync(existing, newPath),
  unlink: (file) => fs.rmSync(file, { force: true }),
  fsyncDir: (dir) => {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
};

/** A hidden name beside `target` no other writer picks: `.<name>.<role>-<pid>-<time>-<random>`. */
export function siblingName(target: string, role: string): string {
  const suffix = `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  return path.join(path.dirname(target), `.${path.basename(target)}.${role}-${suffix}`);
}

/**
 * Renames two staged files into place together: `first` (the side file), then `second` (the model). When the
 * second rename fails, the first target is put back as it was (its previous file, kept under a hard link while
 * the pair is renamed, or no file), so a failure never leaves a new side file beside an old model.
 */
export function renamePair(first: AtomicFile, second: AtomicFile, files: WriteFiles = nodeWriteFiles): void {
  first.sync();
  second.sync();
  let backup: string | undefined = siblingName(first.target, 'old');
  try {
    files.link(first.target, backup);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    backup = undefined; // no previous side file: rolling back removes the new one
  }
  try {
    first.rename();
    try {
      second.rename();
    } catch (e) {
      if (backup !== undefined) {
        files.rename(backup, first.target);
        backup = undefined;
      } else files.unlink(first.target);
      throw e;
    }
  } finally {
    if (backup !== undefined) files.unlink(backup);
  }
}

/** A file being written under a temporary name beside its target. */
export class AtomicFile {
  private fd: number | undefined;
  /** Bytes written so far, up to the furthest position. */
  size = 0;

  private constructor(
    readonly target: string,
    readonly temp: string,
    private readonly files: WriteFiles,
  ) {
    this.fd = files.open(temp);
  }

  static create(target: string, files: WriteFiles = nodeWriteFiles): AtomicFile {
    return new AtomicFile(target, siblingName(target, 'tmp'), files);
  }

  write(bytes: Uint8Array, position: number = this.size): void {
    if (this.fd === undefined) throw new Error(`${this.temp} is already closed`);
    this.files.write(this.fd, bytes, position);
    this.size = Math.max(this.size, position + bytes.length);
  }

  /** fsync and close; the temp file stays until rename(). */
  sync(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.files.fsync(fd);
    this.fd = undefined;
    this.files.close(fd);
  }

  rename(): void {
    this.sync();
    this.files.rename(this.temp, this.target);
  }

  /** Closes and removes the temp file; never throws (it runs while another error propagates). */
  abort(): void {
    try {
      if (this.fd !== undefined) this.files.close(this.fd);
    } catch {
      // already failing: the original error is the one to report
    }
    this.fd = undefined;
    try {
      this.files.unlink(this.temp);
    } catch {
      // nothing more can be done
    }
  }
}
