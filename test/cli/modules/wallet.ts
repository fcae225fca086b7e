// A user's domain with a type of its own, stored through a transcoding that the module exports.
import { Aggregate, Application, type Transcoding } from '../../../src/index.js'

export class Money {
  constructor(
    readonly cents: number,
    readonly currency: string,
  ) {}
}

export const transcodings: Transcoding<Money>[] = [
  {
    name: 'wallet:Money',
    type: Money,
    encode: (money) => [money.cents, money.currency],
    decode: (data) => new Money(...(data as [number, string])),
  },
]

export class Wallet extends Aggregate {
  balance = new Money(0, 'EUR')

  static readonly Opened = Wallet.created('wallet:Wallet.Opened')
  static readonly Deposited = Wallet.event('wallet:Wallet.Deposited', (wallet, e: { amount: Money }) => {
    wallet.balance = new Money(wallet.balance.cents + e.amount.cents, e.amount.currency)
  })

  deposit(amount: Money): void {
    this.trigger(Wallet.Deposited, { amount })
  }
}

export class Bank extends Application {
  static override readonly applicationName = 'Bank'
}
