/* The room page: who is in the room, live, and my own name, editable in place.
 *
 * It uses only what any client of the contract has: GET /<room>/users?hydrate=1,
 * GET/PUT /users/<id_user>, and the Socket.IO events, through the official socket.io-client
 * (window.io), whose reconnection with backoff brings the page back after its worker dies.
 */
(function () {
  'use strict';

  const RENAME_DEBOUNCE_MS = 600;
  const REFRESH_DEBOUNCE_MS = 120;
  const FETCH_TIMEOUT_MS = 5000;
  const RETRY_MS = 1500;
  const EVENT_LOG_MAX = 50; // entries the event log keeps, newest first

  const config = JSON.parse(document.getElementById('room-config').textContent);
  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'),
    statusText: $('status-text'),
    statusDetail: $('status-detail'),
    notice: $('notice'),
    nameForm: $('name-form'),
    nameInput: $('name-input'),
    saveState: $('save-state'),
    avatar: $('my-avatar'),
    socketId: $('my-socket'),
    worker: $('my-worker'),
    table: $('members'),
    body: $('members-body'),
    count: $('members-count'),
    empty: $('members-empty'),
    partial: $('partial'),
    eventLog: $('event-log'),
    eventLogEmpty: $('event-log-empty'),
  };
  const rosterUrl = '/' + encodeURIComponent(config.room) + '/users?hydrate=1';
  const userUrl = '/users/' + encodeURIComponent(config.id_user);

  let members = []; // rows of the last roster, [{id_socket, id_user, procid, data: {name}}]
  let myProcid = null;
  let mySocketId = null; // kept while disconnected, so this tab's last row stays marked
  let savedName = config.name; // the name the server holds, as far as this page knows

  const hueOf = (idUser) => (Number(idUser) * 137) % 360; // same as rooms.http.pages.avatar_hue
  const initial = (name) => (name || '?').trim().charAt(0).toUpperCase() || '?';

  function fetchWithTimeout(url, options) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    return fetch(url, Object.assign({ signal: controller.signal }, options)).finally(() =>
      clearTimeout(timer),
    );
  }

  function describe(error) {
    return error && error.name === 'AbortError' ? 'the server did not answer' : String(error.message || error);
  }

  // ---- connection status --------------------------------------------------------------

  const STATUS_TEXT = {
    connecting: 'Connecting…',
    connected: 'Connected',
    reconnecting: 'Reconnecting…',
    refused: 'Refused',
    disconnected: 'Disconnected',
  };

  function setStatus(state, detail) {
    el.status.dataset.state = state;
    el.statusText.textContent = STATUS_TEXT[state];
    el.status.title = detail || '';
    el.table.classList.toggle('stale', state !== 'connected');
  }

  // Why the page is not connected and since when, as text on the page (the tooltip on the
  // status is invisible on touch screens). Reasons: socket.io-client's `disconnect` reasons
  // (https://socket.io/docs/v4/client-socket-instance/#disconnect).
  const REASONS = {
    'transport close': 'the server closed the connection',
    'transport error': 'the connection failed',
    'ping timeout': 'the server stopped answering',
    'parse error': 'the server sent something unreadable',
    'io server disconnect': 'the server ended the session',
    'io client disconnect': 'this page closed the connection',
  };
  const lost = { since: null, why: '', attempt: 0, error: '' }; // since: null while connected

  const clock = (date) =>
    date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  function connectionLost(why) {
    if (!lost.since) Object.assign(lost, { since: new Date(), why: why, attempt: 0, error: '' });
    showLost();
  }

  function showLost() {
    if (!lost.since) {
      el.statusDetail.hidden = true;
      el.statusDetail.textContent = '';
      return;
    }
    let text = 'Not connected since ' + clock(lost.since) + ': ' + lost.why + '.';
    if (socket.active) {
      text += ' Retrying by itself';
      if (lost.attempt) text += '; attempt ' + lost.attempt + ' failed (' + lost.error + ')';
      text += '.';
    }
    el.statusDetail.textContent = text;
    el.statusDetail.hidden = false;
  }

  function showNotice(node) {
    el.notice.replaceChildren(...(node ? [node] : []));
    el.notice.hidden = !node;
  }

  // ---- the event log --------------------------------------------------------------------
  // Who joined, left or was renamed, and which worker went down, newest first. Events name
  // sockets and users by id: a name comes from the roster, the one before the event for a
  // departure or a rename's old name, the next one for an arrival or a rename's new name.

  const arrivals = new Map(); // id_socket -> refreshes waited for its name
  const renames = new Map(); // id_user -> the name before the rename

  function nameOf(idUser) {
    const row = members.find((m) => m.id_user === idUser && m.data && m.data.name);
    return row ? row.data.name : 'user ' + idUser;
  }

  function logEvent(kind, text) {
    const li = document.createElement('li');
    li.dataset.kind = kind;
    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = clock(now);
    const what = document.createElement('span');
    what.className = 'what';
    what.textContent = text;
    li.append(time, ' ', what);
    el.eventLog.prepend(li);
    while (el.eventLog.children.length > EVENT_LOG_MAX) el.eventLog.lastElementChild.remove();
    el.eventLogEmpty.hidden = true;
  }

  function logResolved() {
    for (const [idSocket, waited] of arrivals) {
      const row = members.find((m) => m.id_socket === idSocket);
      if (row) logEvent('joined', nameOf(row.id_user) + ' joined');
      if (row || waited >= 3) arrivals.delete(idSocket);
      else arrivals.set(idSocket, waited + 1);
    }
    for (const [idUser, before] of renames) {
      const after = nameOf(idUser);
      if (after !== before) logEvent('renamed', before + ' renamed to ' + after);
    }
    renames.clear();
  }

  // ---- the roster -----------------------------------------------------------------------

  let refreshTimer = null;
  let refreshing = false;
  let refreshAgain = false;
  let selfChecks = 0; // refreshes spent waiting for this socket's own join to show

  function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, delay === undefined ? REFRESH_DEBOUNCE_MS : delay);
  }

  async function refresh() {
    if (refreshing) {
      refreshAgain = true; // one more fetch after this one, never two at a time
      return;
    }
    refreshing = true;
    try {
      const response = await fetchWithTimeout(rosterUrl, { headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      const rows = await response.json();
      members = rows;
      logResolved();
      showPartial(
        Number(response.headers.get('X-Workers-Expected')),
        Number(response.headers.get('X-Workers-Responded')),
      );
      render();
      // The server joins the room just after CONNECT: a roster fetched at once can miss us.
      if (socket.connected && !rows.some((m) => m.id_socket === mySocketId) && selfChecks < 10) {
        selfChecks += 1;
        scheduleRefresh(250);
      }
    } catch (error) {
      el.partial.textContent = 'Could not load the members: ' + describe(error) + '. Retrying…';
      el.partial.hidden = false;
      if (socket.connected) scheduleRefresh(RETRY_MS);
    } finally {
      el.table.setAttribute('aria-busy', 'false');
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        scheduleRefresh(0);
      }
    }
  }

  function showPartial(expected, responded) {
    const partial = Number.isFinite(expected) && Number.isFinite(responded) && responded < expected;
    el.partial.hidden = !partial;
    el.partial.textContent = partial
      ? 'Partial list: ' + responded + ' of ' + expected + ' workers answered; some members may be missing.'
      : '';
  }

  function cell(label, ...children) {
    const td = document.createElement('td');
    td.dataset.label = label;
    const wrap = document.createElement('span');
    wrap.append(...children);
    td.append(wrap);
    return td;
  }

  function badge(text, soft) {
    const span = document.createElement('span');
    span.className = soft ? 'badge soft' : 'badge';
    span.textContent = text;
    return span;
  }

  function code(text) {
    const c = document.createElement('code');
    c.textContent = text;
    return c;
  }

  function render() {
    const rows = members
      .slice()
      .sort(
        (a, b) =>
          Number(a.id_user) - Number(b.id_user) || (a.id_socket < b.id_socket ? -1 : a.id_socket > b.id_socket ? 1 : 0),
      );
    const trs = rows.map((m) => {
      const tr = document.createElement('tr');
      const mine = m.id_user === config.id_user;
      const thisTab = m.id_socket === mySocketId;
      tr.dataset.idSocket = m.id_socket;
      tr.dataset.idUser = m.id_user;
      tr.dataset.procid = m.procid || '';
      if (mine) tr.classList.add('mine');
      if (thisTab) tr.classList.add('this-tab');

      const name = (m.data && m.data.name) || '';
      const avatar = document.createElement('span');
      avatar.className = 'avatar';
      avatar.style.setProperty('--hue', hueOf(m.id_user));
      avatar.setAttribute('aria-hidden', 'true');
      avatar.textContent = initial(name);
      const who = document.createElement('span');
      who.className = 'who';
      const nameText = document.createElement('span');
      nameText.className = 'user-name member-name';
      nameText.textContent = name || '(unknown)';
      who.append(avatar, nameText);
      if (thisTab) who.append(badge('you'));
      else if (mine) who.append(badge('you · other tab', true));

      tr.append(
        cell('id_user', m.id_user),
        cell('Name', who),
        cell('Socket', code(m.id_socket)),
        cell('Worker', code(m.procid || '?')),
      );
      return tr;
    });
    el.body.replaceChildren(...trs);
    el.empty.hidden = rows.length > 0;
    const users = new Set(rows.map((m) => m.id_user)).size;
    el.count.textContent =
      rows.length === 0
        ? ''
        : rows.length + (rows.length === 1 ? ' socket' : ' sockets') + ' · ' + users + (users === 1 ? ' user' : ' users');
  }

  // ---- my name --------------------------------------------------------------------------

  let renameTimer = null;
  let saving = false;
  let saveAgain = false;

  function setSaveState(state, text) {
    el.saveState.dataset.state = state;
    el.saveState.textContent = text || '';
    el.nameInput.setAttribute('aria-invalid', state === 'error' ? 'true' : 'false');
  }

  function showMyName(name) {
    el.avatar.textContent = initial(name);
    document.title = config.room + ' · ' + name + ' · identity-playground';
  }

  const editing = () => renameTimer !== null || saving || el.nameInput.value.trim() !== savedName;

  async function save() {
    clearTimeout(renameTimer);
    renameTimer = null;
    const name = el.nameInput.value.trim();
    if (saving) {
      saveAgain = true;
      return;
    }
    if (name === savedName) {
      if (el.saveState.dataset.state !== 'saved') setSaveState('idle');
      return;
    }
    if (!name) {
      setSaveState('error', 'Your name cannot be empty.');
      return;
    }
    saving = true;
    setSaveState('saving', 'Saving…');
    try {
      const response = await fetchWithTimeout(userUrl, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': config.csrf_token },
        body: JSON.stringify({ name: name }),
      });
      if (response.status !== 204) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.error || 'HTTP ' + response.status);
      }
      savedName = name;
      showMyName(name);
      socket.emit('identity-change', { name: name });
      setSaveState('saved', 'Saved');
      scheduleRefresh(0);
    } catch (error) {
      setSaveState('error', 'Not saved: ' + describe(error));
    } finally {
      saving = false;
      if (saveAgain) {
        saveAgain = false;
        save();
      }
    }
  }

  el.nameInput.addEventListener('input', () => {
    clearTimeout(renameTimer);
    if (el.saveState.dataset.state !== 'idle') setSaveState('idle');
    renameTimer = setTimeout(save, RENAME_DEBOUNCE_MS);
  });
  el.nameForm.addEventListener('submit', (event) => {
    event.preventDefault();
    save();
  });

  /** Someone renamed me elsewhere (another tab, the API, the admin): follow unless I am typing. */
  async function reloadMyName() {
    try {
      const response = await fetchWithTimeout(userUrl, { headers: { Accept: 'application/json' } });
      if (!response.ok) return;
      const user = await response.json();
      const typing = editing();
      savedName = user.name;
      showMyName(user.name);
      if (!typing) el.nameInput.value = user.name;
    } catch (error) {
      // the roster refresh shows the new name anyway
    }
  }

  // ---- the socket -----------------------------------------------------------------------

  // WebSocket only (the server has no long-polling); the room rides in the query, so every
  // reconnection joins it again by itself. Backoff: socket.io-client's defaults (1 s .. 5 s).
  // In signed mode (config.token set) a token proves who I am, and the room rides beside it
  // in the CONNECT auth instead. The first connection uses the token the page was served
  // with; each reconnection asks POST /auth/token for a fresh one on the login session, so a
  // page open longer than IDENTITY_TOKEN_MAX_AGE still reconnects (socket.io-client calls an
  // `auth` function before every CONNECT).
  let servedToken = config.token;
  async function connectToken() {
    if (servedToken) {
      const token = servedToken;
      servedToken = null;
      return token;
    }
    const response = await fetch('/auth/token', {
      method: 'POST',
      headers: { 'X-CSRFToken': config.csrf_token },
    });
    if (!response.ok) throw new Error('POST /auth/token: ' + response.status);
    return (await response.json()).token;
  }
  function signedAuth(send) {
    // without a fresh token (the session ended, the server is away) the served one is
    // sent, and the server says why it refuses it
    connectToken().then(
      (token) => send({ token, room: config.room }),
      () => send({ token: config.token, room: config.room }),
    );
  }
  const socket = io(
    config.token
      ? { auth: signedAuth }
      : { query: { id_user: config.id_user, room: config.room } },
  );

  function showSocket() {
    el.socketId.textContent = socket.connected ? socket.id : '—';
    el.worker.textContent = myProcid || '—';
  }

  let connectedBefore = false;
  socket.on('connect', () => {
    mySocketId = socket.id;
    setStatus('connected');
    lost.since = null;
    showLost();
    showNotice(null);
    selfChecks = 0;
    showSocket();
    scheduleRefresh(0);
    if (connectedBefore) reloadMyName(); // a rename may have happened while we were away
    connectedBefore = true;
  });

  socket.on('handshake', (payload) => {
    myProcid = payload && payload.procid ? String(payload.procid) : null;
    showSocket();
  });

  socket.on('disconnect', (reason) => {
    myProcid = null;
    showSocket();
    // socket.active: the client will reconnect by itself (e.g. "transport close" when the
    // worker died); otherwise the server or the page ended the session.
    setStatus(socket.active ? 'reconnecting' : 'disconnected', reason);
    connectionLost(REASONS[reason] || reason);
  });

  socket.io.on('reconnect_attempt', (attempt) => {
    setStatus('reconnecting', 'attempt ' + attempt);
  });

  socket.on('connect_error', (error) => {
    if (socket.active) {
      // a network-level failure: the client retries with backoff
      setStatus(el.status.dataset.state === 'connecting' ? 'connecting' : 'reconnecting', error.message);
      connectionLost('cannot reach the server');
      lost.attempt += 1;
      lost.error = error.message;
      showLost();
      return;
    }
    // Refused by the server (CONNECT_ERROR): socket.io-client does not retry after that.
    setStatus('refused', error.message);
    const message = document.createElement('span');
    const link = document.createElement('a');
    link.href = config.choose_url;
    link.textContent = 'Choose a user';
    message.append('The server refused the connection: ' + error.message + '. ', link);
    showNotice(message);
  });

  socket.on('socket-connected', (idSocket) => {
    arrivals.set(String(idSocket), 0);
    scheduleRefresh();
  });
  socket.on('socket-disconnected', (idSocket) => {
    const row = members.find((m) => m.id_socket === String(idSocket));
    logEvent('left', (row ? nameOf(row.id_user) : 'socket ' + idSocket) + ' left');
    scheduleRefresh();
  });

  socket.on('identity-change', (payload) => {
    const idUser = payload && payload.id_user !== undefined ? String(payload.id_user) : null;
    if (idUser !== null && !renames.has(idUser)) renames.set(idUser, nameOf(idUser));
    scheduleRefresh();
    if (payload && String(payload.id_user) === config.id_user) reloadMyName();
  });

  // A worker died: its sockets are gone at once, whatever a roster fetched earlier said.
  socket.on('worker-down', (payload) => {
    const procid = payload && payload.procid;
    logEvent('worker-down', 'worker ' + procid + ' went down');
    members = members.filter((m) => m.procid !== procid);
    render();
    scheduleRefresh();
  });

  // A page the tab leaves for another may be kept whole in the back/forward cache, its
  // socket open and still in the room until the ping timeout: the socket is closed when the
  // page is hidden that way, and connected again when the cache shows the page again
  // (https://web.dev/articles/bfcache#optimize-your-pages-for-bfcache).
  window.addEventListener('pagehide', () => socket.disconnect());
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) socket.connect();
  });

  showMyName(savedName);
  setSaveState('idle');
})();
