// The roster of each course: a projection of the Courses DCB store into an
// SQLite table `roster (course, student)`, kept by a ProjectionRunner.
//
// A DCB application has a notification log as an Application has (its events
// in position order), so the same runner projects it: each batch changes the
// view and records the position reached in one transaction, and a restarted
// runner resumes there. The projection receives tagged events.
//
//   await using store = sqliteProjectionStore({ path: 'views.db', name: 'roster' })
//   await using runner = new ProjectionRunner({ upstream: courses, projection: new Roster(), store })
//   await runner.start()
//   await runner.waitFor(await courses.head())   // the view has every subscription so far

import { Projection, type TaggedEvent } from '../src/index.js'
import type { SqliteTransaction } from '../src/sqlite/index.js'
import { StudentSubscribed } from './course-subscriptions.js'

/** The students of every course, in an SQLite table. */
export class Roster extends Projection<SqliteTransaction, TaggedEvent> {
  override readonly topics = [StudentSubscribed]

  override createTables(transaction: SqliteTransaction): void {
    transaction.exec('CREATE TABLE IF NOT EXISTS roster (course TEXT NOT NULL, student TEXT NOT NULL)')
  }

  process(event: TaggedEvent, transaction: SqliteTransaction): void {
    if (event instanceof StudentSubscribed) {
      transaction.prepare('INSERT INTO roster VALUES (?, ?)').run(event.data.courseId, event.data.studentId)
    }
  }

  clear(transaction: SqliteTransaction): void {
    transaction.exec('DELETE FROM roster')
  }

  /** Returns the students of a course, by name. */
  static studentsOf(transaction: SqliteTransaction, courseId: string): string[] {
    const select = transaction.prepare('SELECT student FROM roster WHERE course = ? ORDER BY student')
    return (select.all(courseId) as { student: string }[]).map((row) => row.student)
  }
}
