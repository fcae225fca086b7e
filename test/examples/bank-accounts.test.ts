import { describe, expect, it } from 'vitest'
import {
  AccountClosedError,
  BankAccount,
  BankAccounts,
  InsufficientFundsError,
  InvalidOperationError,
} from '../../examples/bank-accounts.js'
import { VersionConflictError } from '../../src/index.js'
import { backends } from '../fixtures/backends.js'

async function logLength(bank: BankAccounts): Promise<number> {
  return (await bank.notificationLog.select({ limit: 1000 })).length
}

describe.each(backends())('bank accounts on %s', (_, newStore) => {
  it('opens an account, deposits and withdraws', async () => {
    await using bank = new BankAccounts({ persistence: newStore()() })
    const id = await bank.openAccount('Alice', 'alice@example.com')
    expect(await bank.getBalance(id)).toBe(0)
    await bank.deposit(id, 200_00)
    await bank.withdraw(id, 50_00)
    expect(await bank.getBalance(id)).toBe(150_00)
    expect(await bank.getAccount(id)).toMatchObject({ fullName: 'Alice', emailAddress: 'alice@example.com' })
  })

  it('refuses a debit beyond the overdraft limit with a typed error, and records nothing', async () => {
    await using bank = new BankAccounts({ persistence: newStore()() })
    const id = await bank.openAccount('Bob', 'bob@example.com')
    await bank.deposit(id, 10_00)
    const before = await logLength(bank)

    const error = await bank.withdraw(id, 10_01).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InsufficientFundsError)
    expect(error).toMatchObject({ accountId: id, balance: 10_00, amount: 10_01, overdraftLimit: 0 })
    expect(await logLength(bank)).toBe(before)

    await bank.setOverdraftLimit(id, 5_00)
    await bank.withdraw(id, 15_00)
    expect(await bank.getBalance(id)).toBe(-5_00)
    await expect(bank.withdraw(id, 1)).rejects.toBeInstanceOf(InsufficientFundsError)
    expect(await bank.getAccount(id)).toMatchObject({ balance: -5_00, overdraftLimit: 5_00 })
  })

  it('transfers atomically: both accounts change, or neither does', async () => {
    await using bank = new BankAccounts({ persistence: newStore()() })
    const a = await bank.openAccount('A', 'a@example.com')
    const b = await bank.openAccount('B', 'b@example.com')
    await bank.deposit(a, 100)
    await bank.transfer(a, b, 60)
    expect([await bank.getBalance(a), await bank.getBalance(b)]).toEqual([40, 60])
    const before = await logLength(bank)
    await expect(bank.transfer(a, b, 41)).rejects.toBeInstanceOf(InsufficientFundsError)
    expect([await bank.getBalance(a), await bank.getBalance(b)]).toEqual([40, 60])
    expect(await logLength(bank)).toBe(before)
    await expect(bank.transfer(a, a, 1)).rejects.toBeInstanceOf(InvalidOperationError)
  })

  it('refuses changes to a closed account, and invalid amounts', async () => {
    await using bank = new BankAccounts({ persistence: newStore()() })
    const id = await bank.openAccount('C', 'c@example.com')
    await expect(bank.deposit(id, 0)).rejects.toBeInstanceOf(InvalidOperationError)
    await expect(bank.deposit(id, 1.5)).rejects.toBeInstanceOf(InvalidOperationError)
    await expect(bank.setOverdraftLimit(id, -1)).rejects.toBeInstanceOf(InvalidOperationError)
    await bank.closeAccount(id)
    expect((await bank.getAccount(id)).isClosed).toBe(true)
    await expect(bank.deposit(id, 1)).rejects.toBeInstanceOf(AccountClosedError)
    await expect(bank.closeAccount(id)).rejects.toBeInstanceOf(AccountClosedError)
    expect(await bank.repository.events(id)).toHaveLength(2)
  })

  it('retries transfers that conflict with concurrent ones, and conserves money', async () => {
    await using bank = new BankAccounts({ persistence: newStore()() })
    const a = await bank.openAccount('A', 'a@example.com')
    const b = await bank.openAccount('B', 'b@example.com')
    await bank.deposit(a, 1000)
    await bank.deposit(b, 1000)

    const transfers = [
      ...Array.from({ length: 5 }, () => bank.transfer(a, b, 30)),
      ...Array.from({ length: 5 }, () => bank.transfer(b, a, 20)),
    ]
    await Promise.all(transfers)

    expect(bank.conflicts).toBeGreaterThan(0)
    expect(await bank.getBalance(a)).toBe(1000 - 5 * 30 + 5 * 20)
    expect(await bank.getBalance(b)).toBe(1000 + 5 * 30 - 5 * 20)
    const account = await bank.repository.get(BankAccount, a)
    expect(account.version).toBe(2 + 10)
  })

  it('retries across two application instances on the same database', async () => {
    const store = newStore()
    await using first = new BankAccounts({ persistence: store() })
    await using second = new BankAccounts({ persistence: store() })
    const a = await first.openAccount('A', 'a@example.com')
    const b = await first.openAccount('B', 'b@example.com')
    await second.deposit(a, 500)
    await second.deposit(b, 500)

    await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? first.transfer(a, b, 10 + i) : second.transfer(b, a, 10 + i))),
    )

    expect(first.conflicts + second.conflicts).toBeGreaterThan(0)
    const balances = [await first.getBalance(a), await second.getBalance(b)]
    expect(balances[0]! + balances[1]!).toBe(1000)
    expect(balances).toEqual([500 - (10 + 12 + 14 + 16) + (11 + 13 + 15 + 17), 500 + 52 - 56])
  })

  it.each([
    ['an aggregate cache', { aggregateCacheSize: 10 }, []],
    ['snapshots every 2 versions', { snapshottingInterval: 2 }, [2, 4, 6, 8]],
    ['both', { aggregateCacheSize: 10, snapshottingInterval: 2 }, [2, 4, 6, 8]],
  ])('keeps the same balances and rules with %s', async (_, options, snapshotVersions) => {
    const store = newStore()
    await using bank = new BankAccounts({ persistence: store(), ...options })
    const a = await bank.openAccount('A', 'a@example.com')
    const b = await bank.openAccount('B', 'b@example.com')
    await bank.deposit(a, 100_00)
    await bank.setOverdraftLimit(b, 10_00)
    await bank.transfer(a, b, 30_00)
    await bank.withdraw(b, 35_00)
    await expect(bank.withdraw(b, 5_01)).rejects.toBeInstanceOf(InsufficientFundsError)
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? bank.transfer(a, b, 1_00) : bank.transfer(b, a, 2_00))),
    )
    await bank.closeAccount(b)
    await expect(bank.deposit(b, 1)).rejects.toBeInstanceOf(AccountClosedError)
    expect(bank.conflicts).toBeGreaterThan(0)
    expect([await bank.getBalance(a), await bank.getBalance(b)]).toEqual([73_00, -8_00])
    await using recorders = await store().open(bank.name)
    expect((await recorders.snapshots.selectEvents(a)).map((s) => s.originatorVersion)).toEqual(snapshotVersions)

    // Another instance starts from the stored events or snapshots, and the first one's cache sees its writes.
    await using again = new BankAccounts({ persistence: store(), ...options })
    expect(await again.getAccount(b)).toMatchObject({ balance: -8_00, overdraftLimit: 10_00, isClosed: true })
    await expect(again.deposit(b, 1)).rejects.toBeInstanceOf(AccountClosedError)
    await again.deposit(a, 1)
    expect(await bank.getBalance(a)).toBe(73_01)
  })

  it('gives up after its attempts with the VersionConflictError, having written nothing for that call', async () => {
    await using bank = new BankAccounts({ persistence: newStore()(), maxAttempts: 1 })
    const id = await bank.openAccount('D', 'd@example.com')
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => bank.deposit(id, 10 ** i)))

    const rejected = results.filter((result) => result.status === 'rejected')
    expect(rejected.length).toBeGreaterThan(0)
    for (const result of rejected) {
      expect(result.reason).toBeInstanceOf(VersionConflictError)
      expect(result.reason).toMatchObject({ originatorId: id, originatorVersion: 2, table: 'bankaccounts_events' })
    }
    const deposited = results
      .map((result, i) => (result.status === 'fulfilled' ? 10 ** i : 0))
      .reduce((sum, amount) => sum + amount, 0)
    expect(await bank.getBalance(id)).toBe(deposited)
    expect(bank.conflicts).toBe(0)
  })
})
