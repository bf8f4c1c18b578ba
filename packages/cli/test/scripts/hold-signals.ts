// Run by signals.test.ts in a process of its own: a "write" that receives SIGTERM in its middle, then
// finishes writing; holdingSignals must let it finish and only then end the process by that signal.
import { writeFileSync } from 'node:fs';
import { holdingSignals } from '../../src/signals.js';

const [out] = process.argv.slice(2);
await holdingSignals(() => {
  process.kill(process.pid, 'SIGTERM');
  const until = Date.now() + 300; // the signal is pending while this synchronous write goes on
  while (Date.now() < until);
  writeFileSync(out!, 'complete\n');
});
writeFileSync(`${out!}.after`, 'the process lived on after the held signal\n');
