'use strict';
// The official socket.io-client 4.x against a cluster in signed identity mode
// (IDENTITY_MODE=signed). Prints one JSON line: the observations (error: null when all went
// well). Run with cwd = the project root so require() finds node_modules/socket.io-client.
//
//   node tests/integration/js/signed.js <server url> <room> <token> <bad token>
//       connects with auth {token, room} and records its handshake and id; then tries
//       auth {token: <bad token>} and a plain id_user, recording each connect_error
const { io } = require('socket.io-client');

const [url, room, token, badToken] = process.argv.slice(2);
const STEP_MS = 5000;

const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');

function client(options) {
  return io(url, { transports: ['websocket'], forceNew: true, reconnection: false, ...options });
}

function outcome(socket) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ timeout: true }), STEP_MS);
    socket.once('connect', () => { clearTimeout(timer); resolve({ connected: true }); });
    socket.once('connect_error', (err) => { clearTimeout(timer); resolve({ refused: err.message }); });
  });
}

async function main() {
  const out = { error: null };
  try {
    const good = client({ auth: { token, room } });
    const handshake = new Promise((resolve) => good.once('handshake', resolve));
    out.good = await outcome(good);
    out.good.id = good.id;
    out.good.handshake = await handshake;
    out.bad = await outcome(client({ auth: { token: badToken, room } }));
    out.plain = await outcome(client({ auth: { id_user: '3', room } }));
    good.disconnect();
  } catch (err) {
    out.error = String(err && err.stack ? err.stack : err);
  }
  print(out);
  process.exit(out.error === null ? 0 : 1);
}

main();
