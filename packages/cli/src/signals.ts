// The final write of a command runs with SIGINT, SIGTERM and SIGHUP held: a signal that arrives while the
// output files are renamed into place takes effect once they are (the command then dies of that signal,
// exit 128 + its number), so it never cuts a write in half. Before the write no handler is installed: a
// signal ends the command at once, and nothing has been written yet.

const HELD = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Lets signals that arrived during synchronous work reach their handlers: libuv reads them in the event loop's
 * poll phase, which a timer makes run at least once (an immediate alone may run before it).
 */
const drain = () => new Promise<void>((done) => setTimeout(() => setImmediate(done), 10));

export async function holdingSignals<T>(write: () => T): Promise<T> {
  let received: NodeJS.Signals | undefined;
  const hold = (signal: NodeJS.Signals) => {
    received ??= signal;
  };
  for (const s of HELD) process.on(s, hold);
  try {
    return write();
  } finally {
    await drain();
    for (const s of HELD) process.off(s, hold);
    if (received !== undefined) process.kill(process.pid, received); // no handler left: the default action ends the process
  }
}
