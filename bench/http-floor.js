#!/usr/bin/env node
'use strict'
// node bench/http-floor.js --url http://127.0.0.1:P [--requests 200]
//
// The HTTP part of a roster request with nothing behind it: K sequential GETs of
// /socket.io/?EIO=4&transport=polling, a fresh TCP connection each (as
// roomusers.js does), which both servers refuse at once with a 400 JSON error
// ("Transport unknown": websocket only), touching neither Redis nor a database.
// Prints one JSON object. Needs REF_DIR (the copied node reference) for its
// harness helpers.
const path = require('node:path')
const c = require(path.join(process.env.REF_DIR || path.join(__dirname, '..', '.tmp', 'node-reference'), 'bench', 'common.js'))

async function main () {
  const a = c.parseArgs(process.argv.slice(2))
  const url = String(a.url || '').replace(/\/+$/, '')
  if (!url) { console.error('usage: node bench/http-floor.js --url URL [--requests 200]'); process.exit(2) }
  const K = c.num(a.requests, 200)
  const target = `${url}/socket.io/?EIO=4&transport=polling`
  for (let i = 0; i < 5; i++) await c.httpGet(target)
  const lat = []
  const status = {}
  for (let i = 0; i < K; i++) {
    const r = await c.httpGet(target)
    lat.push(r.ms)
    status[r.status] = (status[r.status] || 0) + 1
  }
  const s = c.stats(lat)
  const out = { bench: 'http-floor', url: target, requests: K, status_counts: status, latency_ms: s, p50_ms: s.p50, p99_ms: s.p99, loadavg_end: require('node:os').loadavg().map((x) => c.round(x)) }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n')
  process.exit(status['400'] === K ? 0 : 1)
}

const hardStop = setTimeout(() => { console.error('http-floor: hard time limit reached'); process.exit(3) }, 120000)
hardStop.unref()
main().catch((err) => { console.error(err); process.exit(1) })
