#!/usr/bin/env node
'use strict'
// node bench/polling.js --url http://127.0.0.1:P [--transports polling|websocket|default]
//        [--sockets 300] [--receivers 100] [--messages 40] [--interval 100] [--batch 50]
//        [--metrics http://ops:TOKEN@127.0.0.1:P/metrics]
//
// One transport choice of socket.io-client, through the contract only:
// - connects: --sockets clients connect into one room (--batch in flight at a time), each
//   counted once its `handshake` event arrived; connects/s and handshake p50/p99;
// - events: --receivers of them stay in a fresh room with one sender, which emits
//   --messages identity-changes (one every --interval ms) carrying its send time; each
//   receiver's latency is measured, p50/p99 over all of them, and every one must arrive once.
// Prints one JSON object. Given --metrics (our cluster's GET /metrics, its METRICS_TOKEN as
// a Basic password), it also tells how many long-polling requests landed on a worker other
// than their session's (forwarded).
const path = require('node:path')
const REF_DIR = process.env.REF_DIR || path.join(__dirname, '..', '.tmp', 'node-reference')
const c = require(path.join(REF_DIR, 'bench', 'common.js'))
const { io } = require(require.resolve('socket.io-client', { paths: [REF_DIR] }))

const OPTIONS = { polling: { transports: ['polling'] }, websocket: { transports: ['websocket'] }, default: {} }

async function connect (url, options, idUser, room) {
  const socket = io(url, { ...options, forceNew: true, reconnection: false, timeout: 20000, query: { id_user: idUser, room } })
  const started = c.performance.now()
  await new Promise((resolve, reject) => {
    socket.once('handshake', resolve)
    socket.once('connect_error', reject)
  })
  return { socket, ms: c.performance.now() - started }
}

async function polled (metrics) {
  if (!metrics) return { here: 0, forwarded: 0 }
  const r = await c.httpGet(metrics)
  const counts = { here: 0, forwarded: 0 }
  for (const line of (r.text || '').split('\n')) {
    const m = line.match(/^identity_playground_polling_requests_total\{.*served="(here|forwarded)".*\} (\S+)$/)
    if (m) counts[m[1]] += Number(m[2])
  }
  return counts
}

;(async () => {
  const a = c.parseArgs(process.argv.slice(2))
  const url = String(a.url || '').replace(/\/+$/, '')
  const transports = String(a.transports || 'polling')
  const options = OPTIONS[transports]
  if (!url || !options) { console.error('usage: node bench/polling.js --url URL [--transports polling|websocket|default]'); process.exit(2) }
  const N = c.num(a.sockets, 300)
  const R = c.num(a.receivers, 100)
  const M = c.num(a.messages, 40)
  const batch = c.num(a.batch, 50)
  const metrics = a.metrics ? String(a.metrics) : ''
  const before = await polled(metrics)

  const crowd = `crowd-${Date.now().toString(36)}`
  const clients = []
  const handshakes = []
  let next = 0
  const t0 = c.performance.now()
  await Promise.all(Array.from({ length: batch }, async () => {
    while (next < N) {
      const i = next++
      const one = await connect(url, options, String((i % 10) + 1), crowd)
      clients.push(one.socket)
      handshakes.push(one.ms)
    }
  }))
  const connectSeconds = (c.performance.now() - t0) / 1000
  await c.disconnectAll(clients.map((socket) => ({ socket })))

  const room = `latency-${Date.now().toString(36)}`
  const latencies = []
  const received = new Map()
  const receivers = []
  for (let i = 0; i < R; i++) {
    const { socket } = await connect(url, options, String((i % 10) + 1), room)
    socket.on('identity-change', (data) => {
      latencies.push(Date.now() - data.sent)
      received.set(data.n, (received.get(data.n) || 0) + 1)
    })
    receivers.push(socket)
  }
  const { socket: sender } = await connect(url, options, '1', room)
  await c.sleep(500)
  for (let n = 0; n < M; n++) {
    sender.emit('identity-change', { n, sent: Date.now() })
    await c.sleep(c.num(a.interval, 100))
  }
  const deadline = c.performance.now() + 10000
  while (latencies.length < R * M && c.performance.now() < deadline) await c.sleep(100)
  const after = await polled(metrics)
  const requests = (after.here - before.here) + (after.forwarded - before.forwarded)
  const lat = c.stats(latencies)
  console.log(JSON.stringify({
    transports,
    sockets: N,
    connects_per_s: c.round(N / connectSeconds),
    handshake_p50_ms: c.stats(handshakes).p50,
    handshake_p99_ms: c.stats(handshakes).p99,
    receivers: R,
    messages: M,
    event_p50_ms: lat.p50,
    event_p99_ms: lat.p99,
    events_lost: R * M - latencies.length,
    events_duplicated: [...received.values()].reduce((sum, times) => sum + Math.max(0, times - R), 0),
    polling_requests: requests,
    forwarded_share: requests ? c.round((after.forwarded - before.forwarded) / requests, 3) : null
  }))
  await c.disconnectAll([...receivers, sender].map((socket) => ({ socket })))
  process.exit(0)
})().catch((err) => { console.error(err); process.exit(1) })
