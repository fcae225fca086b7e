import Table from 'cli-table3'

/** Returns rows as a table for people, under a line of headings, ending in a newline. */
export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  // No colours: the output is often piped or read by tests.
  const drawn = new Table({ head: [...head], style: { head: [], border: [] } })
  for (const row of rows) drawn.push([...row])
  return `${drawn.toString()}\n`
}
