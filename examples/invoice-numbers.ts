// Gapless invoice numbers with dynamic consistency boundaries (DCB).
//
// Invoices are numbered 1, 2, 3, ... with no gap and no number twice, as tax
// law often asks. A sequence in the database would leave gaps (a rolled-back
// transaction keeps its number). Here the next number is decided from the
// last InvoiceCreated event, and the invoice is appended only if no other
// invoice was created since: of racing writers one wins, and the others read
// again and take the next number.
//
// The decision reads every InvoiceCreated event, so it costs more as invoices
// accumulate; a store with many would keep the sequence per year or per series
// (a tag, `series:2026`, in the model) so that each decision reads one series.

import { DcbApplication, decisionModel, tag, taggedEvent } from '../src/index.js'

/** An invoice: its series and its number in it, the customer and the amount. */
export interface Invoice {
  readonly series: string
  readonly number: number
  readonly customer: string
  readonly amountCents: number
}

export const InvoiceCreated = taggedEvent('invoicing:InvoiceCreated', (e: Invoice) => [
  tag('series', e.series),
  tag('invoice', `${e.series}-${e.number}`),
])

/** The last invoice number of a series; 0 before its first invoice. */
export const lastNumberModel = (series: string) =>
  decisionModel({ initial: 0, tags: [tag('series', series)] }).on(InvoiceCreated, (_, e) => e.data.number)

/** The invoicing application: invoices numbered without gaps, per series. */
export class Invoicing extends DcbApplication {
  static override readonly applicationName = 'Invoicing'

  /**
   * Creates the next invoice of a series and returns its number, deciding
   * again while other invoices of the series are created meanwhile (up to `attempts` times).
   */
  async createInvoice(series: string, customer: string, amountCents: number, attempts = 50): Promise<number> {
    const { state: last } = await this.decide(
      lastNumberModel(series),
      (last) => [new InvoiceCreated({ series, number: last + 1, customer, amountCents })],
      { attempts },
    )
    return last + 1
  }

  /** Returns the invoices of a series, in number order. */
  async invoices(series: string): Promise<Invoice[]> {
    const { events } = await this.read({ types: [InvoiceCreated], tags: [tag('series', series)] })
    return events.flatMap((event) => (event instanceof InvoiceCreated ? [event.data] : []))
  }
}
