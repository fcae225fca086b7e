// The studio's page: Preact components written with htm's tagged templates,
// so the browser runs this file as it is (no build step). Views are chosen by
// the address's hash (#/apps/<app>/log, #/apps/<app>/aggregates/<id>, ...), so
// the browser's back button and links work; every view reads the JSON API.

import htm from 'htm'
import { h, render } from 'preact'
import { useEffect, useState } from 'preact/hooks'

const html = htm.bind(h)

/** How many notifications (or DCB events) a page shows. */
const PAGE_SIZE = 50

/** Reads the API: the body as JSON, or an Error with the message the server gave. */
async function api(path) {
  const response = await fetch(`/api/${path}`, { headers: { accept: 'application/json' } })
  const body = await response.json()
  if (!response.ok) throw new Error(body.error ?? `${response.status} ${response.statusText}`)
  return body
}

/** Returns [value, error] of an API read, read again whenever `path` changes. */
function useApi(path) {
  const [result, setResult] = useState({ path: undefined })
  useEffect(() => {
    let current = true
    api(path).then(
      (value) => current && setResult({ path, value }),
      (error) => current && setResult({ path, error }),
    )
    return () => {
      current = false
    }
  }, [path])
  return result.path === path ? [result.value, result.error] : [undefined, undefined]
}

/** The route the hash names: its parts and its query. */
function currentRoute() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?')
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) }
}

function useRoute() {
  const [route, setRoute] = useState(currentRoute)
  useEffect(() => {
    const changed = () => setRoute(currentRoute())
    addEventListener('hashchange', changed)
    return () => removeEventListener('hashchange', changed)
  }, [])
  return route
}

const appPath = (app) => `#/apps/${encodeURIComponent(app)}`
const aggregatePath = (app, id) => `${appPath(app)}/aggregates/${encodeURIComponent(id)}`

function logPath(app, { from, topics = [], originator } = {}) {
  const query = new URLSearchParams()
  if (from !== undefined && from > 1) query.set('from', String(from))
  for (const topic of topics) query.append('topic', topic)
  if (originator) query.set('originator', originator)
  const text = query.toString()
  return `${appPath(app)}/log${text ? `?${text}` : ''}`
}

const dcbPath = (app, after) => `${appPath(app)}/dcb${after ? `?after=${after}` : ''}`

/** Returns a filter's query for the API: its topics and originator. */
function filterQuery({ topics, originator }, query = new URLSearchParams()) {
  for (const topic of topics) query.append('topic', topic)
  if (originator) query.set('originator', originator)
  return query
}

function Failure({ error }) {
  return html`<p class="failure" role="alert">${error.message}</p>`
}

function Loading() {
  return html`<p class="note">Loading…</p>`
}

/** An event's state: its fields as indented JSON, or its bytes when they cannot be decoded. */
function State({ state, open = false }) {
  if ('fields' in state) {
    const text = JSON.stringify(state.fields, null, 2)
    return html`<details class="state" open=${open}><summary>${JSON.stringify(state.fields)}</summary><pre>${text}</pre></details>`
  }
  return html`<span class="bytes" title="not decoded: give the cipher key or compression">${state.bytes} bytes: ${state.base64}</span>`
}

function Apps() {
  const [found, error] = useApi('apps')
  if (error) return html`<${Failure} error=${error} />`
  if (!found) return html`<${Loading} />`
  if (found.apps.length === 0) return html`<p class="note">No applications in this database.</p>`
  return html`<section>
    <h2>Applications</h2>
    <table class="apps">
      <thead><tr><th>application</th><th>events</th><th>last notification</th><th>DCB store</th></tr></thead>
      <tbody>
        ${found.apps.map(
          (app) => html`<tr key=${app.name}>
            <td><a href=${app.events === null ? dcbPath(app.name) : logPath(app.name)}>${app.name}</a></td>
            <td class="number">${app.events ?? '–'}</td>
            <td class="number">${app.maxNotificationId ?? '–'}</td>
            <td>${app.dcbHead === null ? '–' : html`<a href=${dcbPath(app.name)}>${app.dcbHead} events</a>`}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    <p class="note">${found.states ? 'Aggregates show their state at each version (--module given).' : "Start with --module <file> to see aggregates' states at each version."}</p>
  </section>`
}

/** The notifications recorded after `after`, as they are recorded, while `enabled`. */
function useLive(app, after, filter, enabled) {
  const [arrived, setArrived] = useState([])
  const [connected, setConnected] = useState(false)
  const key = `${app}|${after}|${filterQuery(filter)}|${enabled}`
  useEffect(() => {
    setArrived([])
    setConnected(false)
    if (!enabled || after === undefined) return
    const query = filterQuery(filter, new URLSearchParams({ after: String(after) }))
    const source = new EventSource(`/api/apps/${encodeURIComponent(app)}/live?${query}`)
    source.onopen = () => setConnected(true)
    source.onerror = () => setConnected(false)
    source.addEventListener('notification', (event) => {
      const notification = JSON.parse(event.data)
      setArrived((before) => [...before, notification])
    })
    return () => source.close()
  }, [key])
  return { arrived, connected }
}

function Log({ app, query }) {
  const from = Number(query.get('from') ?? '1')
  const topics = query.getAll('topic')
  const originator = query.get('originator') ?? ''
  const filter = { topics, originator }
  const apiQuery = filterQuery(filter, new URLSearchParams({ from: String(from), limit: String(PAGE_SIZE) }))
  const [page, error] = useApi(`apps/${encodeURIComponent(app)}/log?${apiQuery}`)
  // The last page follows the log: new notifications are added to it as they are recorded.
  const tail = page !== undefined && page.next === undefined
  const after = page && (page.notifications.at(-1)?.id ?? from - 1)
  const { arrived, connected } = useLive(app, after, filter, tail)
  const [history, setHistory] = useState([])
  if (error) return html`<${Failure} error=${error} />`
  if (!page) return html`<${Loading} />`
  const rows = [...page.notifications, ...arrived]
  const go = (next) => {
    setHistory([...history, from])
    location.hash = logPath(app, { ...filter, from: next })
  }
  // Back to the page this one was reached from, or to the ids just before it (a page reached by Last or Go to).
  const back = () => {
    const previous = history.at(-1) ?? Math.max(1, from - PAGE_SIZE)
    setHistory(history.slice(0, -1))
    location.hash = logPath(app, { ...filter, from: previous })
  }
  const jump = (to) => {
    setHistory([])
    location.hash = logPath(app, { ...filter, from: Math.max(1, to) })
  }
  const goTo = (event) => {
    event.preventDefault()
    jump(Number(new FormData(event.target).get('from')) || 1)
  }
  const applyFilter = (event) => {
    event.preventDefault()
    const form = new FormData(event.target)
    const chosen = String(form.get('topics'))
      .split(',')
      .map((topic) => topic.trim())
      .filter(Boolean)
    setHistory([])
    location.hash = logPath(app, { topics: chosen, originator: String(form.get('originator')).trim() })
  }
  return html`<section>
    <h2>Notification log</h2>
    <form class="filter" onSubmit=${applyFilter}>
      <label>Topics <input name="topics" placeholder="all topics (comma-separated)" value=${topics.join(', ')} /></label>
      <label>Originator <input name="originator" class="originator" placeholder="any aggregate" value=${originator} /></label>
      <button type="submit">Filter</button>
    </form>
    <nav class="pager">
      <button onClick=${() => {
        setHistory([])
        location.hash = logPath(app, filter)
      }} disabled=${from <= 1}>First</button>
      <button onClick=${back} disabled=${from <= 1}>Previous</button>
      <button onClick=${() => go(page.next)} disabled=${page.next === undefined} data-next=${page.next}>Next</button>
      <button onClick=${() => jump(page.maxNotificationId - PAGE_SIZE + 1)} disabled=${tail}>Last</button>
      <span class="note">${rows.length ? `ids ${rows[0].id}–${rows.at(-1).id}` : 'no notifications'} · log ends at ${Math.max(page.maxNotificationId, rows.at(-1)?.id ?? 0)}</span>
      ${tail && html`<span class=${connected ? 'live on' : 'live'} title="new notifications appear as they are recorded">${connected ? 'live' : 'connecting…'}</span>`}
      <form class="goto" onSubmit=${goTo}>
        <label>From id <input name="from" type="number" min="1" /></label>
      </form>
    </nav>
    <table class="log">
      <thead><tr><th>id</th><th>originator</th><th>version</th><th>topic</th><th>state</th></tr></thead>
      <tbody>
        ${rows.map(
          (
            notification,
            index,
          ) => html`<tr key=${notification.id} class=${index >= page.notifications.length ? 'arrived' : ''}>
            <td class="number">${notification.id}</td>
            <td class="id"><a href=${aggregatePath(app, notification.originatorId)}>${notification.originatorId}</a></td>
            <td class="number">${notification.originatorVersion}</td>
            <td class="topic">${notification.topic}</td>
            <td><${State} state=${notification.state} /></td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`
}

function Aggregate({ app, id, query }) {
  const [aggregate, error] = useApi(`apps/${encodeURIComponent(app)}/aggregates/${encodeURIComponent(id)}`)
  if (error) return html`<${Failure} error=${error} />`
  if (!aggregate) return html`<${Loading} />`
  const events = aggregate.events
  const last = events.at(-1).originatorVersion
  const asked = Number(query.get('version') ?? last)
  const version = events.some((event) => event.originatorVersion === asked) ? asked : last
  const index = events.findIndex((event) => event.originatorVersion === version)
  const choose = (chosen) => {
    location.hash = `${aggregatePath(app, id)}?version=${chosen}`
  }
  return html`<section>
    <h2>Aggregate <code>${id}</code></h2>
    <div class="versions">
      <label for="version">Version <output id="version-shown">${version}</output> of ${last}</label>
      <input id="version" type="range" min="0" max=${events.length - 1} value=${index}
        onInput=${(event) => choose(events[Number(event.target.value)].originatorVersion)} />
    </div>
    ${aggregate.states && html`<${AggregateState} app=${app} id=${id} version=${version} />`}
    <h3>Event ${version}: <span class="topic">${events[index].topic}</span></h3>
    <pre class="event">${'fields' in events[index].state ? JSON.stringify(events[index].state.fields, null, 2) : `${events[index].state.bytes} bytes: ${events[index].state.base64}`}</pre>
    <h3>Events</h3>
    <table class="events">
      <thead><tr><th>version</th><th>topic</th><th>state</th></tr></thead>
      <tbody>
        ${events.map(
          (
            event,
            at,
          ) => html`<tr key=${event.originatorVersion} class=${at === index ? 'chosen' : at > index ? 'later' : ''}
            onClick=${() => choose(event.originatorVersion)}>
            <td class="number">${event.originatorVersion}</td>
            <td class="topic">${event.topic}</td>
            <td><${State} state=${event.state} /></td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`
}

function AggregateState({ app, id, version }) {
  const [state, error] = useApi(
    `apps/${encodeURIComponent(app)}/aggregates/${encodeURIComponent(id)}/state?version=${version}`,
  )
  if (error) return html`<${Failure} error=${error} />`
  if (!state) return html`<${Loading} />`
  return html`<h3>${state.className} at version ${state.version}</h3><pre class="aggregate-state">${JSON.stringify(state.state, null, 2)}</pre>`
}

function Dcb({ app, query }) {
  const after = Number(query.get('after') ?? '0')
  const [page, error] = useApi(`apps/${encodeURIComponent(app)}/dcb?after=${after}&limit=${PAGE_SIZE}`)
  if (error) return html`<${Failure} error=${error} />`
  if (!page) return html`<${Loading} />`
  const events = page.events
  return html`<section>
    <h2>DCB store</h2>
    <nav class="pager">
      <button onClick=${() => {
        location.hash = dcbPath(app, Math.max(0, after - PAGE_SIZE))
      }} disabled=${after === 0}>Previous</button>
      <button onClick=${() => {
        location.hash = dcbPath(app, page.next)
      }} disabled=${page.next === undefined}>Next</button>
      <span class="note">${events.length ? `positions ${events[0].position}–${events.at(-1).position}` : 'no events'} · head ${page.head}</span>
    </nav>
    <table class="dcb">
      <thead><tr><th>position</th><th>type</th><th>tags</th><th>data</th></tr></thead>
      <tbody>
        ${events.map(
          (event) => html`<tr key=${event.position}>
            <td class="number">${event.position}</td>
            <td class="topic">${event.type}</td>
            <td>${event.tags.map((tag) => html`<span class="tag">${tag}</span> `)}</td>
            <td><${State} state=${event.data} /></td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`
}

function Followers() {
  const [rows, error] = useApi('followers')
  if (error) return html`<${Failure} error=${error} />`
  if (!rows) return html`<${Loading} />`
  if (rows.length === 0)
    return html`<section><h2>Followers</h2><p class="note">No followers: no application of this database has tracking records.</p></section>`
  return html`<section>
    <h2>Followers</h2>
    <table class="followers">
      <thead><tr><th>follower</th><th>upstream</th><th>position</th><th>upstream head</th><th>behind</th></tr></thead>
      <tbody>
        ${rows.map(
          (row) => html`<tr key=${`${row.follower}|${row.upstream}`} class=${row.behind ? 'behind' : ''}>
            <td>${row.follower}${row.kind === 'projection' ? ' (projection)' : ''}</td>
            <td>${row.upstream}${row.aggregates === undefined ? '' : ` (per aggregate: ${row.aggregates})`}</td>
            <td class="number">${row.position}</td>
            <td class="number">${row.head ?? '–'}</td>
            <td class="number">${row.behind === null ? '–' : `${row.behind}${row.behindAtLeast ? '+' : ''}`}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`
}

/** The view the route names. */
function View({ parts, query }) {
  const [top, app, view, id] = parts
  if (top === 'followers') return html`<${Followers} />`
  if (app === undefined) return html`<${Apps} />`
  if (view === 'dcb') return html`<${Dcb} app=${app} query=${query} />`
  if (view === 'aggregates' && id !== undefined) return html`<${Aggregate} app=${app} id=${id} query=${query} />`
  return html`<${Log} app=${app} query=${query} />`
}

function Studio() {
  const { parts, query } = useRoute()
  const [top, app, view] = parts
  const tab = (href, name, current) => html`<a href=${href} class=${current ? 'current' : ''}>${name}</a>`
  return html`<header>
      <h1><a href="#/">eventsourcing studio</a></h1>
      <nav class="app">
        ${tab('#/', 'Applications', parts.length === 0)}
        ${tab('#/followers', 'Followers', top === 'followers')}
        ${
          app !== undefined &&
          html`<span class="app-name">${app}</span>
            ${tab(logPath(app), 'Log', view === 'log' || view === undefined)}
            ${tab(dcbPath(app), 'DCB', view === 'dcb')}`
        }
      </nav>
    </header>
    <${View} parts=${parts} query=${query} />`
}

render(html`<${Studio} />`, document.getElementById('studio'))
