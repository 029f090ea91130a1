// A Socket.IO client in JavaScript (socket.io-client 4.x, from the project's node_modules):
//   node examples/client.mjs [URL] [ID_USER] [ROOM]
// Connects as a user to a room, joins a second room, announces a new name, prints every
// event it receives for LISTEN_SECONDS (default 2), then disconnects.
import { io } from "socket.io-client";

const env = process.env;
const [
  url = env.SERVER_URL ?? "http://localhost:8000",
  idUser = env.ID_USER ?? "1",
  room = env.ROOM ?? "Maths",
] = process.argv.slice(2);
const listenMs = 1000 * Number(env.LISTEN_SECONDS ?? 2);

const socket = io(url, {
  // the client's defaults: long-polling, then the upgrade to WebSocket (any worker serves
  // both); transports: ["websocket"] saves the first round trip where WebSockets pass
  auth: { id_user: idUser, room },
  reconnection: false,
});

// handshake, socket-connected, socket-disconnected, identity-change, ...
socket.onAny((event, payload) => console.log(event, JSON.stringify(payload)));

socket.on("connect_error", (error) => {
  console.error("connect_error:", error.message); // e.g. "Unknown id_user: 99"
  process.exit(1);
});

socket.on("connect", async () => {
  const joined = await socket.emitWithAck("join", "Physics");
  console.log("join ack", JSON.stringify(joined));
  const renamed = await socket.emitWithAck("identity-change", { name: `User ${idUser}` });
  console.log("identity-change ack", JSON.stringify(renamed));
  setTimeout(() => socket.disconnect(), listenMs);
});
