// Bank accounts: domain rules that throw typed errors, and an application
// whose commands retry when another writer changed the same account first.

import { Aggregate, Application, type ApplicationOptions, retryOnConflict } from '../src/index.js'

/** A rule of the bank was broken; nothing was recorded. */
export class BankAccountError extends Error {
  constructor(message: string) {
    super(message)
    this.name = new.target.name
  }
}

/** A debit would take the balance below the overdraft limit. */
export class InsufficientFundsError extends BankAccountError {
  constructor(
    readonly accountId: string,
    readonly balance: number,
    readonly amount: number,
    readonly overdraftLimit: number,
  ) {
    super(
      `Account ${accountId} cannot be debited ${amount}: its balance is ${balance} and its overdraft limit ${overdraftLimit}`,
    )
  }
}

/** The account was closed, so its balance can no longer change. */
export class AccountClosedError extends BankAccountError {
  constructor(readonly accountId: string) {
    super(`Account ${accountId} is closed`)
  }
}

/** An amount or limit that is not a positive whole number of cents, or a transfer to the same account. */
export class InvalidOperationError extends BankAccountError {}

function checkAmount(amount: number): void {
  if (!Number.isSafeInteger(amount) || amount <= 0) {
    throw new InvalidOperationError(`An amount must be a positive whole number of cents, got ${amount}`)
  }
}

/** A bank account. Amounts are whole numbers of cents, so sums are exact. */
export class BankAccount extends Aggregate {
  static readonly topic = 'bank:BankAccount'

  fullName = ''
  emailAddress = ''
  balance = 0
  overdraftLimit = 0
  isClosed = false

  static readonly Opened = BankAccount.created(
    'bank:BankAccount.Opened',
    (account, e: { fullName: string; emailAddress: string }) => {
      account.fullName = e.fullName
      account.emailAddress = e.emailAddress
    },
  )

  static readonly Credited = BankAccount.event('bank:BankAccount.Credited', (account, e: { amount: number }) => {
    account.balance += e.amount
  })

  static readonly Debited = BankAccount.event('bank:BankAccount.Debited', (account, e: { amount: number }) => {
    account.balance -= e.amount
  })

  static readonly OverdraftLimitSet = BankAccount.event(
    'bank:BankAccount.OverdraftLimitSet',
    (account, e: { overdraftLimit: number }) => {
      account.overdraftLimit = e.overdraftLimit
    },
  )

  static readonly Closed = BankAccount.event('bank:BankAccount.Closed', (account) => {
    account.isClosed = true
  })

  /** Opens an account with a zero balance and no overdraft. */
  static open(fullName: string, emailAddress: string): BankAccount {
    return BankAccount.create(BankAccount.Opened, { fullName, emailAddress })
  }

  /** @throws AccountClosedError, InvalidOperationError */
  credit(amount: number): void {
    this.checkOpen()
    checkAmount(amount)
    this.trigger(BankAccount.Credited, { amount })
  }

  /** @throws InsufficientFundsError if the balance would go below minus the overdraft limit; AccountClosedError, InvalidOperationError */
  debit(amount: number): void {
    this.checkOpen()
    checkAmount(amount)
    if (this.balance - amount < -this.overdraftLimit) {
      throw new InsufficientFundsError(this.id, this.balance, amount, this.overdraftLimit)
    }
    this.trigger(BankAccount.Debited, { amount })
  }

  /** @throws AccountClosedError, InvalidOperationError if the limit is negative or not whole cents */
  setOverdraftLimit(overdraftLimit: number): void {
    this.checkOpen()
    if (!Number.isSafeInteger(overdraftLimit) || overdraftLimit < 0) {
      throw new InvalidOperationError(`An overdraft limit must be zero or more whole cents, got ${overdraftLimit}`)
    }
    this.trigger(BankAccount.OverdraftLimitSet, { overdraftLimit })
  }

  /** @throws AccountClosedError if it is closed already */
  close(): void {
    this.checkOpen()
    this.trigger(BankAccount.Closed, {})
  }

  // TS `private`, not `#private`: the aggregate cache copies aggregates without
  // running their constructor, and a copy fails the brand check of `#` members.
  private checkOpen(): void {
    if (this.isClosed) throw new AccountClosedError(this.id)
  }
}

/** Options of {@link BankAccounts}. */
export interface BankAccountsOptions extends ApplicationOptions {
  /** How many times a command runs before a concurrency conflict is passed to the caller (default 10). */
  readonly maxAttempts?: number
}

/**
 * The bank: opens accounts and moves money between them.
 *
 * Every command reads the accounts it changes, applies the rules and saves; if
 * another writer (another call, or another process on the same database)
 * saved one of those accounts in between, the save fails with a
 * `VersionConflictError` and nothing is written, so the command reads the
 * accounts again and retries (`retryOnConflict`). Each conflict means that
 * some other command succeeded, so with N commands racing on the same
 * accounts, N attempts are always enough.
 */
export class BankAccounts extends Application {
  static override readonly applicationName = 'BankAccounts'

  readonly maxAttempts: number
  #conflicts = 0

  constructor(options: BankAccountsOptions = {}) {
    super(options)
    this.maxAttempts = options.maxAttempts ?? 10
  }

  /** How many times a command of this instance found its accounts changed by another writer, and retried. */
  get conflicts(): number {
    return this.#conflicts
  }

  /** Opens an account and returns its id. */
  async openAccount(fullName: string, emailAddress: string): Promise<string> {
    const account = BankAccount.open(fullName, emailAddress)
    await this.save(account)
    return account.id
  }

  /** Returns an account's balance in cents. */
  async getBalance(accountId: string): Promise<number> {
    return (await this.repository.get(BankAccount, accountId)).balance
  }

  /** Returns an account. */
  getAccount(accountId: string): Promise<BankAccount> {
    return this.repository.get(BankAccount, accountId)
  }

  /** Credits an account. */
  deposit(accountId: string, amount: number): Promise<void> {
    return this.#update([accountId], ([account]) => account!.credit(amount))
  }

  /** Debits an account. @throws InsufficientFundsError */
  withdraw(accountId: string, amount: number): Promise<void> {
    return this.#update([accountId], ([account]) => account!.debit(amount))
  }

  /**
   * Moves money from one account to another: both changes are recorded in one
   * atomic write, or neither is.
   *
   * @throws InsufficientFundsError if the debit would break the overdraft limit.
   */
  async transfer(fromAccountId: string, toAccountId: string, amount: number): Promise<void> {
    if (fromAccountId === toAccountId) {
      throw new InvalidOperationError(`Cannot transfer from account ${fromAccountId} to itself`)
    }
    await this.#update([fromAccountId, toAccountId], ([from, to]) => {
      from!.debit(amount)
      to!.credit(amount)
    })
  }

  /** Sets how far below zero an account's balance may go. */
  setOverdraftLimit(accountId: string, overdraftLimit: number): Promise<void> {
    return this.#update([accountId], ([account]) => account!.setOverdraftLimit(overdraftLimit))
  }

  /** Closes an account. */
  closeAccount(accountId: string): Promise<void> {
    return this.#update([accountId], ([account]) => account!.close())
  }

  // Domain errors are not retried: they hold whatever the accounts' state.
  async #update(accountIds: readonly string[], change: (accounts: BankAccount[]) => void): Promise<void> {
    await retryOnConflict(
      async () => {
        const accounts = await Promise.all(accountIds.map((id) => this.repository.get(BankAccount, id)))
        change(accounts)
        await this.save(...accounts)
      },
      {
        attempts: this.maxAttempts,
        onConflict: () => {
          this.#conflicts++
        },
      },
    )
  }
}
