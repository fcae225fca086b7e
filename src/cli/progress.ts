import { SingleBar } from 'cli-progress'
import type { CommandIo } from './output.js'

/** A progress bar on stderr, or nothing when stderr is not a terminal (piped output stays clean). */
export interface Progress {
  update(value: number): void
  stop(): void
}

/** Starts a progress bar towards `total` (in `unit`) on `io.stderr` when it is a terminal and the total is known (not 0). */
export function startProgress(io: CommandIo, total: number, unit: string): Progress {
  if (!io.stderr.isTTY || total === 0) return { update() {}, stop() {} }
  const bar = new SingleBar({
    stream: io.stderr,
    format: `{bar} {percentage}% | {value}/{total} ${unit} | {eta_formatted} left`,
    hideCursor: true,
  })
  bar.start(total, 0)
  return { update: (value) => bar.update(value), stop: () => bar.stop() }
}
