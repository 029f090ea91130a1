'use strict';
// The official socket.io-client 4.x, unchanged, driven through the contract's scenario.
// Prints JSON lines on stdout; the last one holds the observations (error: null when all went
// well). Run with cwd = the project root so require() finds node_modules/socket.io-client.
//
//   node tests/integration/js/scenario.js scenario <server url> <room>
//       two clients (id_user 1 by query, 2 by auth), joins, identity-change both ways,
//       a disconnect, and a client refused for an unknown id_user
//   node tests/integration/js/scenario.js mixed <server url> <room>
//       id_user 4 in <room>: prints {"ready": true, "id": ...}, waits for one identity-change,
//       answers with its own, and leaves
//   node tests/integration/js/scenario.js binary <server url> <room>
//       as mixed, its identity-change holding a Buffer (a binary event with an attachment)
const { io } = require('socket.io-client');

const [mode, url, room] = process.argv.slice(2);
const STEP_MS = 5000;
const QUIET_MS = 300; // how long to keep listening for duplicates that must not come

const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function client(options) {
  // forceNew: one Engine.IO connection per client, as separate browsers would have.
  // No reconnection: a dropped connection must show up as a failure.
  return io(url, { transports: ['websocket'], forceNew: true, reconnection: false, ...options });
}

// Records into `seen` what a socket receives from the moment it is created (handshake comes
// right after the connect).
function observe(socket, seen = {}) {
  Object.assign(seen, {
    id: null,
    handshake: null,
    connected: [],
    disconnected: [],
    identity: [],
    joinAck: null,
  });
  socket.on('handshake', (data) => { seen.handshake = data; });
  socket.on('socket-connected', (id) => seen.connected.push(id));
  socket.on('socket-disconnected', (id) => seen.disconnected.push(id));
  socket.on('identity-change', (data) => seen.identity.push(data));
  return seen;
}

async function until(what, predicate, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function connected(socket) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no connect')), STEP_MS);
    socket.once('connect', () => { clearTimeout(timer); resolve(); });
    socket.once('connect_error', (err) => { clearTimeout(timer); reject(err); });
  });
}

function refusal(socket) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no connect_error')), STEP_MS);
    socket.once('connect', () => { clearTimeout(timer); reject(new Error('connected')); });
    socket.once('connect_error', (err) => { clearTimeout(timer); resolve(err); });
  });
}

async function scenario(out) {
  const other = `${room}-other`;
  const a = client({ query: { id_user: '1', room } });
  out.a = observe(a);
  await connected(a);
  out.a.id = a.id;
  await until('handshake of a', () => out.a.handshake);

  const b = client({ auth: { id_user: '2', room } });
  out.b = observe(b);
  await connected(b);
  out.b.id = b.id;
  await until('handshake of b', () => out.b.handshake);
  await until('a to see b', () => out.a.connected.length > 0);

  out.b.joinAck = await b.timeout(STEP_MS).emitWithAck('join', other);
  out.a.joinAck = await a.timeout(STEP_MS).emitWithAck('join', other);
  await until('b to see a', () => out.b.connected.length > 0);

  a.emit('identity-change', { name: 'Johnny', id_user: '7' });
  await until('b to get identity-change', () => out.b.identity.length > 0);
  b.emit('identity-change', { name: 'Maria', id_user: '1' });
  await until('a to get identity-change', () => out.a.identity.length > 0);
  await sleep(QUIET_MS);

  b.disconnect();
  await until('a to see b leave', () => out.a.disconnected.length > 0);
  await sleep(QUIET_MS);
  a.disconnect();

  const c = client({ query: { id_user: '999', room } });
  const err = await refusal(c);
  await sleep(QUIET_MS); // it must not connect after all
  out.refused = { message: err.message, connected: c.connected };
  c.close();
}

async function mixed(out, extra = { id_user: '9' }) {
  const n = client({ query: { id_user: '4', room } });
  observe(n, out);
  await connected(n);
  out.id = n.id;
  await until('handshake', () => out.handshake);
  print({ ready: true, id: n.id });
  await until('identity-change from the Python client', () => out.identity.length > 0);
  n.emit('identity-change', { name: 'from-node', ...extra });
  await sleep(QUIET_MS);
  n.disconnect();
}

async function main() {
  const out = { error: null };
  const guard = setTimeout(() => {
    print({ ...out, error: 'global timeout' });
    process.exit(2);
  }, 25000);
  try {
    if (mode === 'scenario') await scenario(out);
    else if (mode === 'mixed') await mixed(out);
    else if (mode === 'binary') await mixed(out, { avatar: Buffer.from([0, 1, 2, 255]) });
    else throw new Error(`unknown mode ${mode}`);
  } catch (err) {
    out.error = String(err && err.stack ? err.stack : err);
  }
  clearTimeout(guard);
  print(out);
  process.exit(out.error === null ? 0 : 1);
}

main();
