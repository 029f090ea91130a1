#!/usr/bin/env node
'use strict'
// node bench/soak.js --url http://127.0.0.1:P --cluster-pid PID [--sockets 2000]
//        [--rooms 20] [--duration 300] [--period 30] [--quiet 5] [--ops 40] [--polls 5]
//        [--renames 1] [--mix 1,1,1,1] [--log cluster.log]
//
// Soak test through the contract only. Opens --sockets Socket.IO clients spread over
// --rooms rooms, then for --duration seconds, in cycles of --period seconds:
//   churn (period - quiet seconds): --ops operations per second on random sockets, a
//     mix of reconnect (disconnect + connect a new socket), join, leave, and rename
//     (identity-change event; plus --renames PUT /users/<id> per second), while
//     GET /<room>/users of random rooms is polled --polls times per second;
//   quiet (the rest): no new operations; once in-flight ones are done, every room's
//     roster must list exactly the sockets this generator holds open in that room (no
//     ghost, none missing; rechecked up to 3 times 1 s apart before it counts as
//     wrong), and GET /workers must count exactly the sockets held open.
// Samples the workers' RSS every 5 s. At the end closes every socket and checks that
// all rosters and /workers drop to zero. Prints one JSON object.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const REF_DIR = process.env.REF_DIR || path.join(__dirname, '..', '.tmp', 'node-reference')
const c = require(path.join(REF_DIR, 'bench', 'common.js'))
const { io } = require(require.resolve('socket.io-client', { paths: [REF_DIR] }))

const a = c.parseArgs(process.argv.slice(2))
const url = String(a.url || '').replace(/\/+$/, '')
if (!url) { console.error('usage: node bench/soak.js --url URL --cluster-pid PID [--duration 300]'); process.exit(2) }
const pid = a['cluster-pid'] ? Number(a['cluster-pid']) : null
const N = c.num(a.sockets, 2000)
const R = c.num(a.rooms, 20)
const DURATION = c.num(a.duration, 300) * 1000
const PERIOD = c.num(a.period, 30) * 1000
const QUIET = c.num(a.quiet, 5) * 1000
const OPS = c.num(a.ops, 40)
const POLLS = c.num(a.polls, 5)
const RENAMES = c.num(a.renames, 1)
// relative weights of reconnect, join, leave, identity-change (e.g. --mix 1,0,0,0: reconnects only)
const MIX = String(a.mix || '1,1,1,1').split(',').map(Number)
const MIX_CUM = MIX.map((w, i) => MIX.slice(0, i + 1).reduce((x, y) => x + y, 0) / MIX.reduce((x, y) => x + y, 0))
const tag = Date.now().toString(36)
const ROOMS = Array.from({ length: R }, (_, i) => `soak-${tag}-${i}`)
const rand = (n) => Math.floor(Math.random() * n)
const pick = (xs) => xs[rand(xs.length)]
const t0 = c.performance.now()
const since = () => c.round((c.performance.now() - t0) / 1000, 1)

const open = new Map() // id_socket -> { socket, idUser, rooms: Set }
const counts = {
  connects: 0, connect_failed: 0, reconnects: 0, joins: 0, leaves: 0, renames_event: 0,
  renames_http: 0, rename_http_failed: 0, ack_failed: 0, unexpected_disconnects: 0,
  identity_change_received: 0, polls: 0, poll_non_200: 0, poll_partial: 0
}
const firstErrors = []
const note = (what) => { if (firstErrors.length < 20) firstErrors.push({ t: since(), what }) }
const pollLatency = []
let inflight = 0

function track (p) {
  inflight++
  return p.finally(() => { inflight-- })
}

function connectOne (room) {
  return new Promise((resolve) => {
    const idUser = String(rand(10) + 1)
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 20000, query: { id_user: idUser, room } })
    let done = false
    const finish = (entry) => { if (!done) { done = true; clearTimeout(timer); resolve(entry) } }
    const timer = setTimeout(() => { counts.connect_failed++; note(`connect timeout (room ${room})`); socket.disconnect(); finish(null) }, 20000)
    socket.once('handshake', () => {
      const entry = { socket, idUser, rooms: new Set([room]), id: socket.id }
      open.set(socket.id, entry)
      counts.connects++
      socket.on('disconnect', (reason) => {
        if (reason !== 'io client disconnect') {
          counts.unexpected_disconnects++
          note(`unexpected disconnect of ${entry.id}: ${reason}`)
          open.delete(entry.id)
        }
      })
      socket.on('identity-change', () => { counts.identity_change_received++ })
      finish(entry)
    })
    socket.once('connect_error', (err) => { counts.connect_failed++; note(`connect_error: ${err.message}`); finish(null) })
  })
}

async function ack (entry, event, room) {
  try {
    const reply = await entry.socket.timeout(5000).emitWithAck(event, room)
    if (!(reply === true || (reply && reply.ok === true))) { counts.ack_failed++; note(`${event} ${room}: ${JSON.stringify(reply)}`); return false }
    return true
  } catch (err) {
    counts.ack_failed++; note(`${event} ${room}: ${err.message}`); return false
  }
}

function putName (idUser, name) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ name })
    const req = http.request(`${url}/users/${idUser}`, { method: 'PUT', agent: false, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      res.resume(); res.on('end', () => resolve(res.statusCode))
    })
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve(0))
    req.end(body)
  })
}

// One random operation on a random open socket that is not busy.
async function operate () {
  const entries = [...open.values()].filter((e) => !e.busy)
  if (!entries.length) return
  const e = pick(entries)
  e.busy = true
  try {
    const r = Math.random()
    if (r < MIX_CUM[0]) { // reconnect: a socket leaves for good, a new one comes
      open.delete(e.id)
      e.socket.disconnect()
      counts.reconnects++
      await connectOne(pick(ROOMS))
    } else if (r < MIX_CUM[1]) {
      const room = pick(ROOMS.filter((x) => !e.rooms.has(x)))
      if (room && e.rooms.size < 3 && await ack(e, 'join', room)) { e.rooms.add(room); counts.joins++ }
    } else if (r < MIX_CUM[2]) {
      const room = e.rooms.size ? pick([...e.rooms]) : null
      if (room && await ack(e, 'leave', room)) { e.rooms.delete(room); counts.leaves++ }
    } else {
      e.socket.emit('identity-change', { name: `soak-${rand(1e6)}` })
      counts.renames_event++
    }
  } finally { e.busy = false }
}

async function poll () {
  const r = await c.httpGet(`${url}/${encodeURIComponent(pick(ROOMS))}/users`, { timeoutMs: 5000 })
  counts.polls++
  pollLatency.push(r.ms)
  if (r.status !== 200) { counts.poll_non_200++; note(`poll status ${r.status} ${r.error || ''}`) } else if (Number(r.headers['x-workers-responded']) < Number(r.headers['x-workers-expected'])) counts.poll_partial++
}

// Expected roster of every room from what this generator holds open.
function expected () {
  const m = new Map(ROOMS.map((r) => [r, new Set()]))
  for (const e of open.values()) for (const r of e.rooms) m.get(r).add(e.id)
  return m
}

async function checkRosters (label) {
  const t = c.performance.now()
  let result = null
  for (let attempt = 1; attempt <= 4; attempt++) {
    const want = expected()
    let ghosts = 0; let missing = 0; let wrongRooms = 0; let failed = 0; let partial = 0
    const examples = []
    for (const room of ROOMS) {
      const r = await c.httpGet(`${url}/${encodeURIComponent(room)}/users`, { timeoutMs: 5000 })
      if (r.status !== 200 || !Array.isArray(r.body)) { failed++; continue }
      if (Number(r.headers['x-workers-responded']) < Number(r.headers['x-workers-expected'])) partial++
      const got = new Set(r.body.map((x) => x.id_socket))
      const w = want.get(room)
      const g = [...got].filter((x) => !w.has(x))
      const m = [...w].filter((x) => !got.has(x))
      ghosts += g.length; missing += m.length
      if (g.length || m.length || got.size !== r.body.length) { wrongRooms++; if (examples.length < 3) examples.push({ room, ghosts: g.slice(0, 3), missing: m.slice(0, 3), listed: r.body.length, expected: w.size }) }
    }
    const wk = await c.httpGet(`${url}/workers`, { timeoutMs: 5000 })
    const serverSockets = Array.isArray(wk.body) ? wk.body.reduce((s, x) => s + (Number(x.sockets) || 0), 0) : null
    result = { label, t: since(), attempt, open: open.size, server_sockets: serverSockets, wrong_rooms: wrongRooms, ghosts, missing, failed, partial, examples, check_ms: c.round(c.performance.now() - t) }
    if (!wrongRooms && !failed && serverSockets === open.size) break
    await c.sleep(1000)
  }
  return result
}

async function main () {
  const out = { bench: 'soak', url, sockets: N, rooms: R, duration_s: DURATION / 1000, period_s: PERIOD / 1000, quiet_s: QUIET / 1000, ops_per_s: OPS, polls_per_s: POLLS, http_renames_per_s: RENAMES, mix_reconnect_join_leave_rename: MIX, machine: c.machineNote() }
  const rss = []
  const sampleRss = () => {
    const x = c.clusterRss(pid)
    if (x) rss.push({ t: since(), workers_kb: x.workers.map((w) => w.rss_kb), total_kb: x.workers_rss_kb, open: open.size })
  }
  sampleRss()
  const rssTimer = setInterval(sampleRss, 5000)

  // ramp: N sockets, 200 handshakes in flight
  let next = 0
  const tRamp = c.performance.now()
  await Promise.all(Array.from({ length: 200 }, async () => { while (next < N) { next++; await connectOne(ROOMS[next % R]) } }))
  out.ramp = { connected: open.size, seconds: c.round((c.performance.now() - tRamp) / 1000, 1), rate_per_s: c.round(open.size / ((c.performance.now() - tRamp) / 1000), 1) }
  console.error(`[soak ${since()}s] ramp: ${open.size}/${N} open in ${out.ramp.seconds}s`)
  const checks = [await checkRosters('after ramp')]
  sampleRss()

  const tStart = c.performance.now()
  const renameIds = Array.from({ length: 10 }, (_, i) => String(i + 1))
  let cycle = 0
  while (c.performance.now() - tStart < DURATION) {
    cycle++
    const churnEnd = Math.min(c.performance.now() + PERIOD - QUIET, tStart + DURATION - QUIET)
    const timers = [
      setInterval(() => { if (open.size) track(operate()) }, 1000 / OPS),
      setInterval(() => track(poll()), 1000 / POLLS)
    ]
    if (RENAMES > 0) {
      timers.push(setInterval(() => track(putName(pick(renameIds), `Soak${rand(1e6)}`).then((s) => { if (s === 204) counts.renames_http++; else { counts.rename_http_failed++; note(`PUT /users status ${s}`) } })), 1000 / RENAMES))
    }
    while (c.performance.now() < churnEnd) await c.sleep(100)
    timers.forEach(clearInterval)
    // top up to N open sockets (reconnects keep the count, failures would lower it)
    const tq = c.performance.now()
    while (inflight > 0 && c.performance.now() - tq < 10000) await c.sleep(20)
    const check = await checkRosters(`cycle ${cycle}`)
    checks.push(check)
    console.error(`[soak ${since()}s] cycle ${cycle}: open ${check.open}, server ${check.server_sockets}, wrong rooms ${check.wrong_rooms} (ghosts ${check.ghosts}, missing ${check.missing}) after ${check.attempt} attempt(s); rss ${rss.length ? rss[rss.length - 1].total_kb : '?'} KB`)
    const rest = QUIET - (c.performance.now() - tq)
    if (rest > 0) await c.sleep(rest)
  }
  out.cycles = cycle

  // close everything: rosters and /workers must drop to zero
  for (const e of open.values()) e.socket.disconnect()
  open.clear()
  await c.sleep(1000)
  checks.push(await checkRosters('after closing all'))
  sampleRss()
  clearInterval(rssTimer)

  const wrong = checks.filter((x) => x.wrong_rooms || x.failed || x.server_sockets !== x.open)
  out.checks = checks
  out.counts = counts
  out.first_errors = firstErrors
  out.poll_latency_ms = c.stats(pollLatency)
  out.wrong_checks = wrong.length
  out.ghost_sockets_total = checks.reduce((s, x) => s + x.ghosts, 0)
  out.missing_sockets_total = checks.reduce((s, x) => s + x.missing, 0)
  out.first_attempt_mismatch = checks.filter((x) => x.attempt > 1).length
  // memory: flat after warm-up? compare the first sample after the first churn cycle with the last under load
  const loaded = rss.filter((x) => x.open > 0)
  const warmT = PERIOD / 1000 + (out.ramp.seconds || 0)
  const afterWarm = loaded.filter((x) => x.t >= warmT)
  const slope = (xs) => {
    if (xs.length < 3) return null
    const n = xs.length; const mt = xs.reduce((s, x) => s + x.t, 0) / n; const mv = xs.reduce((s, x) => s + x.total_kb, 0) / n
    const num = xs.reduce((s, x) => s + (x.t - mt) * (x.total_kb - mv), 0); const den = xs.reduce((s, x) => s + (x.t - mt) ** 2, 0)
    return den ? c.round((num / den) * 60, 0) : null
  }
  out.rss = {
    samples: rss,
    after_ramp_kb: (loaded.find((x) => x.t >= (out.ramp.seconds || 0)) || {}).total_kb || null,
    warm_kb: afterWarm.length ? afterWarm[0].total_kb : null,
    end_kb: loaded.length ? loaded[loaded.length - 1].total_kb : null,
    growth_after_warmup_kb: afterWarm.length > 1 ? afterWarm[afterWarm.length - 1].total_kb - afterWarm[0].total_kb : null,
    slope_after_warmup_kb_per_min: slope(afterWarm),
    // allocator warm-up lasts a few thousand reconnects per worker (bench/leakprobe.py): the
    // second half of the run tells whether growth is levelling off
    slope_second_half_kb_per_min: slope(afterWarm.filter((x) => x.t >= loaded[loaded.length - 1].t / 2))
  }
  if (a.log && fs.existsSync(a.log)) {
    const lines = fs.readFileSync(a.log, 'utf8').split('\n')
    const kinds = {}
    let errors = 0; let warnings = 0
    for (const line of lines) {
      const isErr = /Traceback|ERROR|CRITICAL/.test(line)
      const isWarn = /WARNING/.test(line)
      if (!isErr && !isWarn) continue
      if (isErr) errors++; else warnings++
      const k = line.replace(/^\[w\d+ \d+\] /, '').replace(/[0-9a-f]{8,}|\d+/g, 'N').slice(0, 140)
      kinds[k] = (kinds[k] || 0) + 1
    }
    out.cluster_log = { errors, warnings, top: Object.entries(kinds).sort((x, y) => y[1] - x[1]).slice(0, 10).map(([line, n]) => ({ n, line })) }
  }
  out.loadavg_end = os.loadavg().map((x) => c.round(x))
  out.ok = wrong.length === 0 && counts.connect_failed === 0 && counts.poll_non_200 === 0 && counts.ack_failed === 0 && counts.unexpected_disconnects === 0 && (!out.cluster_log || out.cluster_log.errors === 0)
  process.stdout.write(JSON.stringify(out, null, 2) + '\n')
  process.exit(out.ok ? 0 : 1)
}

const hardStop = setTimeout(() => { console.error('soak: hard time limit reached'); process.exit(3) }, DURATION + 240000)
hardStop.unref()
main().catch((err) => { console.error(err); process.exit(1) })
