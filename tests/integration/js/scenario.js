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
//
// SCENARIO_TRANSPORTS picks the clients' transports: `websocket` (when unset) gives
// `transports: ['websocket']`, `polling` gives `transports: ['polling']`, and `default` leaves
// the option out, as most applications do: HTTP long-polling first, then the upgrade to
// WebSocket. With `default`, every client waits for its upgrade right after its connect, so
// what follows travels over the WebSocket of a session that was opened by polling.
const { io } = require('socket.io-client');

const [mode, url, room] = process.argv.slice(2);
const TRANSPORTS = process.env.SCENARIO_TRANSPORTS || 'websocket';
const TRANSPORT_OPTIONS = {
  websocket: { transports: ['websocket'] },
  polling: { transports: ['polling'] },
  default: {},
}[TRANSPORTS];
const UPGRADES = TRANSPORTS === 'default';
const STEP_MS = 5000;
const QUIET_MS = 300; // how long to keep listening for duplicates that must not come

const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function client(options) {
  // forceNew: one Engine.IO connection per client, as separate browsers would have.
  // No reconnection: a dropped connection must show up as a failure.
  return io(url, { ...TRANSPORT_OPTIONS, forceNew: true, reconnection: false, ...options });
}

// Records into `seen` what a socket receives from the moment it is created (handshake comes
// right after the connect), the Engine.IO upgrades it goes through (the name of each
// transport upgraded to) and the reason of each disconnect.
function observe(socket, seen = {}) {
  Object.assign(seen, {
    id: null,
    handshake: null,
    connected: [],
    disconnected: [],
    identity: [],
    joinAck: null,
    upgrades: [],
    idAfterUpgrade: null, // socket.id once both the connect and the upgrade happened
    transport: null, // the Engine.IO transport's name just before the client disconnects
    disconnectReasons: [],
  });
  socket.on('handshake', (data) => { seen.handshake = data; });
  socket.on('socket-connected', (id) => seen.connected.push(id));
  socket.on('socket-disconnected', (id) => seen.disconnected.push(id));
  socket.on('identity-change', (data) => seen.identity.push(data));
  socket.on('disconnect', (reason) => seen.disconnectReasons.push(reason));
  // io() with autoConnect creates the Manager's Engine.IO socket at once, before any I/O
  socket.io.engine.on('upgrade', (transport) => seen.upgrades.push(transport.name));
  return seen;
}

// With default transports, waits until the engine upgraded from polling to WebSocket.
async function upgraded(what, socket, seen) {
  if (!UPGRADES) return;
  await until(`${what} to upgrade`, () => seen.upgrades.length > 0);
  seen.idAfterUpgrade = socket.id;
}

// The client's own disconnect, after noting which transport carried the session at the end.
// Resolves once the server has the goodbye: over polling the Socket.IO DISCONNECT and the
// Engine.IO CLOSE travel in POSTs, which an exit right after would cut short, and the server
// would then keep the socket until pingInterval + pingTimeout.
function leave(socket, seen) {
  const engine = socket.io.engine;
  seen.transport = engine.transport.name;
  const closed = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the disconnect was not sent')), STEP_MS);
    const done = () => { clearTimeout(timer); resolve(); };
    // The engine closes once the DISCONNECT's request is answered; over polling its CLOSE
    // then goes out in one more POST, whose answer the transport reports as drain.
    engine.once('close', () => {
      if (engine.transport.name !== 'polling') return done();
      engine.transport.once('drain', done);
      engine.transport.once('error', done);
    });
  });
  socket.disconnect();
  return closed;
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
  await upgraded('a', a, out.a);

  const b = client({ auth: { id_user: '2', room } });
  out.b = observe(b);
  await connected(b);
  out.b.id = b.id;
  await until('handshake of b', () => out.b.handshake);
  await upgraded('b', b, out.b);
  await until('a to see b', () => out.a.connected.length > 0);

  out.b.joinAck = await b.timeout(STEP_MS).emitWithAck('join', other);
  out.a.joinAck = await a.timeout(STEP_MS).emitWithAck('join', other);
  await until('b to see a', () => out.b.connected.length > 0);

  a.emit('identity-change', { name: 'Johnny', id_user: '7' });
  await until('b to get identity-change', () => out.b.identity.length > 0);
  b.emit('identity-change', { name: 'Maria', id_user: '1' });
  await until('a to get identity-change', () => out.a.identity.length > 0);
  await sleep(QUIET_MS);

  await leave(b, out.b);
  await until('a to see b leave', () => out.a.disconnected.length > 0);
  await sleep(QUIET_MS);
  await leave(a, out.a);

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
  await upgraded('the client', n, out);
  print({ ready: true, id: n.id });
  await until('identity-change from the Python client', () => out.identity.length > 0);
  n.emit('identity-change', { name: 'from-node', ...extra });
  await sleep(QUIET_MS);
  await leave(n, out);
}

async function main() {
  const out = { error: null };
  const guard = setTimeout(() => {
    print({ ...out, error: 'global timeout' });
    process.exit(2);
  }, 25000);
  try {
    if (TRANSPORT_OPTIONS === undefined) throw new Error(`unknown transports ${TRANSPORTS}`);
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
