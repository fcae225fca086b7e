// Course subscriptions with dynamic consistency boundaries (DCB): the canonical example.
//
// A course holds at most its capacity of students, and a student takes at most
// MAX_COURSES courses. With aggregates, the subscription would belong to either
// the course or the student, and the other rule would need a saga. Here each
// rule is a small decision model over the events it depends on (those tagged
// with the course, those tagged with the student), and a subscription is
// decided on both at once: it is appended only if none of those events
// appeared since they were read. Two students taking the last place, or one
// student taking two courses at once, cannot both succeed.

import { DcbApplication, decisionModel, tag, taggedEvent } from '../src/index.js'

/** The most courses a student may take. */
export const MAX_COURSES = 3

export const CourseDefined = taggedEvent('courses:CourseDefined', (e: { courseId: string; capacity: number }) => [
  tag('course', e.courseId),
])

export const CourseCapacityChanged = taggedEvent(
  'courses:CourseCapacityChanged',
  (e: { courseId: string; capacity: number }) => [tag('course', e.courseId)],
)

export const StudentSubscribed = taggedEvent(
  'courses:StudentSubscribed',
  (e: { studentId: string; courseId: string }) => [tag('student', e.studentId), tag('course', e.courseId)],
)

/** A course's state: whether it exists, its capacity, and how many students it has. */
export const courseModel = (courseId: string) =>
  decisionModel({ initial: { defined: false, capacity: 0, students: 0 }, tags: [tag('course', courseId)] })
    .on(CourseDefined, (course, e) => ({ ...course, defined: true, capacity: e.data.capacity }))
    .on(CourseCapacityChanged, (course, e) => ({ ...course, capacity: e.data.capacity }))
    .on(StudentSubscribed, (course) => ({ ...course, students: course.students + 1 }))

/** The courses a student takes. */
export const studentModel = (studentId: string) =>
  decisionModel({ initial: [] as readonly string[], tags: [tag('student', studentId)] }).on(
    StudentSubscribed,
    (courses, e) => [...courses, e.data.courseId],
  )

/** Why a subscription or a change was refused; nothing was appended. */
export class CourseRuleError extends Error {
  override readonly name = 'CourseRuleError'
}

/** The courses application: courses with a capacity, and students subscribing to them. */
export class Courses extends DcbApplication {
  static override readonly applicationName = 'Courses'

  /** Defines a course. @throws CourseRuleError if it is defined already. */
  async defineCourse(courseId: string, capacity: number): Promise<void> {
    await this.decide(courseModel(courseId), (course) => {
      if (course.defined) throw new CourseRuleError(`Course ${courseId} is defined already`)
      return [new CourseDefined({ courseId, capacity })]
    })
  }

  /** Changes a course's capacity. @throws CourseRuleError if it does not exist, or has more students. */
  async changeCapacity(courseId: string, capacity: number): Promise<void> {
    await this.decide(
      courseModel(courseId),
      (course) => {
        if (!course.defined) throw new CourseRuleError(`Course ${courseId} does not exist`)
        if (course.students > capacity) throw new CourseRuleError(`Course ${courseId} has ${course.students} students`)
        return [new CourseCapacityChanged({ courseId, capacity })]
      },
      { attempts: 10 },
    )
  }

  /**
   * Subscribes a student to a course, deciding again on a conflict (another
   * subscription to the course, or of the student, appended meanwhile).
   *
   * @throws CourseRuleError if the course does not exist or is full, the
   * student takes it already, or takes {@link MAX_COURSES} courses.
   */
  async subscribeStudent(studentId: string, courseId: string): Promise<void> {
    await this.decide(
      { course: courseModel(courseId), courses: studentModel(studentId) },
      ({ course, courses }) => {
        if (!course.defined) throw new CourseRuleError(`Course ${courseId} does not exist`)
        if (courses.includes(courseId)) throw new CourseRuleError(`${studentId} takes ${courseId} already`)
        if (course.students >= course.capacity) throw new CourseRuleError(`Course ${courseId} is full`)
        if (courses.length >= MAX_COURSES) throw new CourseRuleError(`${studentId} takes ${MAX_COURSES} courses`)
        return [new StudentSubscribed({ studentId, courseId })]
      },
      { attempts: 20 },
    )
  }

  /** Returns a course's state. */
  async course(courseId: string): Promise<{ defined: boolean; capacity: number; students: number }> {
    return (await this.evaluate(courseModel(courseId))).state
  }

  /** Returns the courses a student takes. */
  async coursesOf(studentId: string): Promise<readonly string[]> {
    return (await this.evaluate(studentModel(studentId))).state
  }
}
