"""The course-subscription workload of bench/dcb.mjs on Python eventsourcing 10's
PostgreSQL DCB recorder (PostgresDcbRecorderTT), for bench/dcb.mjs to run beside
its own sides on the same server. Arguments: the server's URL, the number of
clients (threads), a fresh table prefix, then COURSES CAPACITY STUDENTS
MAX_COURSES DECISIONS. Prints one JSON line: rate, conflictRate, wrong."""

import json
import sys
import threading
import time
import uuid
from urllib.parse import urlparse

from eventsourcing.dcb.api import DcbAppendCondition, DcbEvent, DcbQuery, DcbQueryItem
from eventsourcing.dcb.postgres_tt import PostgresDcbRecorderTT
from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresDatastore

url, clients, prefix = urlparse(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
COURSES, CAPACITY, STUDENTS, MAX_COURSES, DECISIONS = map(int, sys.argv[4:9])
RETRIES = 20

datastore = PostgresDatastore(
    url.path.lstrip("/"), url.hostname, url.port, url.username, url.password, pool_size=clients + 1
)
recorder = PostgresDcbRecorderTT(datastore, events_table_name=prefix)
recorder.create_table()


def pick(i):
    x = ((i + 1) * 2654435761) & 0xFFFFFFFFFFFFFFFF
    x = (x ^ (x >> 15)) & 0xFFFFFFFF
    return f"c{x % COURSES}", f"s{(x // COURSES) % STUDENTS}"


def event(type_, data, tags):
    return DcbEvent(type=type_, data=json.dumps(data).encode(), tags=tags, uuid=uuid.uuid4(), metadata={})


def decide(course, student):
    query = DcbQuery(
        items=[
            DcbQueryItem(types=["CourseDefined", "StudentSubscribed"], tags=[f"course:{course}"]),
            DcbQueryItem(types=["StudentSubscribed"], tags=[f"student:{student}"]),
        ]
    )
    response = recorder.read(query)
    capacity = taken = courses = 0
    already = False
    for sequenced in response:
        e = sequenced.event
        if e.type == "CourseDefined":
            capacity = json.loads(e.data)["capacity"]
        else:
            in_course, of_student = f"course:{course}" in e.tags, f"student:{student}" in e.tags
            taken += in_course
            courses += of_student
            already = already or (in_course and of_student)
    if already or taken >= capacity or courses >= MAX_COURSES:
        return False
    tags = [f"course:{course}", f"student:{student}"]
    condition = DcbAppendCondition(fail_if_events_match=query, after=response.head)
    recorder.append([event("StudentSubscribed", {"course": course, "student": student}, tags)], condition)
    return True


recorder.append([event("CourseDefined", {"capacity": CAPACITY}, [f"course:c{c}"]) for c in range(COURSES)])
lock = threading.Lock()
state = {"next": 0, "appended": 0, "attempts": 0, "conflicts": 0}


def client():
    while True:
        with lock:
            i = state["next"]
            state["next"] += 1
        if i >= DECISIONS:
            return
        course, student = pick(i)
        for _ in range(RETRIES + 1):
            try:
                done = decide(course, student)
                with lock:
                    state["attempts"] += done
                    state["appended"] += done
                break
            except IntegrityError:
                with lock:
                    state["attempts"] += 1
                    state["conflicts"] += 1


started = time.perf_counter()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seconds = time.perf_counter() - started

per_course, per_student = {}, {}
for sequenced in recorder.read(DcbQuery(items=[DcbQueryItem(types=["StudentSubscribed"])])):
    tags = sequenced.event.tags
    course = next(t for t in tags if t.startswith("course:"))
    student = next(t for t in tags if t.startswith("student:"))
    per_course[course] = per_course.get(course, 0) + 1
    per_student[student] = per_student.get(student, 0) + 1
wrong = sum(n > CAPACITY for n in per_course.values()) + sum(n > MAX_COURSES for n in per_student.values())
print(json.dumps({"rate": state["appended"] / seconds, "conflictRate": state["conflicts"] / max(1, state["attempts"]), "wrong": wrong}))
datastore.close()
