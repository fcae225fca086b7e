import { Aggregate, Application } from '../../src/index.js'

export class Account extends Aggregate {
  static readonly topic = 'test:Account'
  owner = ''
  balance = 0n
  history = new Map<number, string>()
  tags = new Set<string>()
  openedAt = new Date(0)

  static Opened = Account.created('test:Account.Opened', (account, e: { owner: string; at: Date }) => {
    account.owner = e.owner
    account.openedAt = e.at
  })
  static Credited = Account.event('test:Account.Credited', (account, e: { amount: bigint; note: string }) => {
    account.balance += e.amount
    account.history.set(account.version + 1, e.note)
  })
  static Tagged = Account.event('test:Account.Tagged', (account, e: { tag: string }) => {
    account.tags.add(e.tag)
  })

  static open(owner: string, id?: string) {
    return Account.create(Account.Opened, { owner, at: new Date('2026-01-02T03:04:05.678Z') }, { id })
  }

  credit(amount: bigint, note = '') {
    this.trigger(Account.Credited, { amount, note })
  }

  tag(tag: string) {
    this.trigger(Account.Tagged, { tag })
  }
}

export class Bank extends Application {
  async open(owner: string) {
    const account = Account.open(owner)
    await this.save(account)
    return account.id
  }

  async credit(id: string, amount: bigint) {
    const account = await this.repository.get(Account, id)
    account.credit(amount, `credit ${amount}`)
    await this.save(account)
  }
}
