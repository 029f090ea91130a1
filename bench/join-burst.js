#!/usr/bin/env node
'use strict'
// node bench/join-burst.js --url http://127.0.0.1:P [--listeners 10] [--sockets 1000]
//        [--batch 200] [--settle 10]
//
// Room events lost under a join burst, through the contract only. --listeners sockets
// join a fresh room first; then --sockets more join it in a burst (--batch connects in
// flight at a time). Each joiner's connect is announced to the room as
// `socket-connected`, so every listener must hear each of them once. Once the roster
// lists everyone and no event came for --settle seconds, prints one JSON object: events
// expected (listeners x sockets), heard, lost, duplicated, and the burst's connects/s.
const path = require('node:path')
const REF_DIR = process.env.REF_DIR || path.join(__dirname, '..', '.tmp', 'node-reference')
const c = require(path.join(REF_DIR, 'bench', 'common.js'))
const { io } = require(require.resolve('socket.io-client', { paths: [REF_DIR] }))

;(async () => {
  const a = c.parseArgs(process.argv.slice(2))
  const url = String(a.url || '').replace(/\/+$/, '')
  if (!url) { console.error('usage: node bench/join-burst.js --url URL [--sockets 1000]'); process.exit(2) }
  const L = c.num(a.listeners, 10)
  const M = c.num(a.sockets, 1000)
  const settleMs = c.num(a.settle, 10) * 1000
  const room = `burst-${Date.now().toString(36)}`
  const heard = new Map() // listener index -> Map(id_socket -> times)
  let lastEvent = c.performance.now()
  const listeners = []
  for (let i = 0; i < L; i++) {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, query: { id_user: String((i % 10) + 1), room } })
    const mine = new Map()
    heard.set(i, mine)
    socket.on('socket-connected', (sid) => { mine.set(sid, (mine.get(sid) || 0) + 1); lastEvent = c.performance.now() })
    await new Promise((resolve, reject) => { socket.once('handshake', resolve); socket.once('connect_error', reject) })
    listeners.push(socket)
  }
  await c.sleep(500)
  for (const mine of heard.values()) mine.clear() // listeners announced to each other
  const burst = await c.connectClients({ url, n: M, room, batch: c.num(a.batch, 200) })
  const joiners = new Set(burst.clients.filter((x) => x && x.socket.id).map((x) => x.socket.id))
  const inRoom = await c.waitRoomSize(url, room, L + joiners.size, { timeoutMs: 60000 })
  while (c.performance.now() - lastEvent < settleMs) await c.sleep(250)
  let got = 0; let duplicated = 0; let strangers = 0
  for (const mine of heard.values()) {
    for (const [sid, times] of mine) {
      if (!joiners.has(sid)) { strangers += times; continue }
      got += 1; duplicated += times - 1
    }
  }
  const expected = L * joiners.size
  console.log(JSON.stringify({
    listeners: L,
    sockets: M,
    connected: joiners.size,
    roster_complete: inRoom.ok,
    rate_per_s: burst.summary.rate_per_s,
    handshake_p99_ms: burst.summary.handshake_ms.p99,
    events_expected: expected,
    events_heard: got,
    events_lost: expected - got,
    events_duplicated: duplicated,
    events_unknown: strangers
  }))
  await c.disconnectAll([...burst.clients, ...listeners.map((socket) => ({ socket }))])
  process.exit(0)
})().catch((err) => { console.error(err); process.exit(1) })
