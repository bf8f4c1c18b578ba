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
    const dir = path.dirname(target);
    const suffix = `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    return new AtomicFile(target, path.join(dir, `.${path.basename(target)}.tmp-${suffix}`), files);
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
