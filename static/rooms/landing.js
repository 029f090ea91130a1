/* The landing page: keeps the "open as" links on the chosen room, and shows the live
 * cluster (GET /workers), the rooms in use (GET /rooms) and the users' current names
 * (GET /users) every few seconds. */
(function () {
  'use strict';

  const POLL_MS = 3000;
  const FETCH_TIMEOUT_MS = 2500;
  const ROOMS_SHOWN = 20;

  const $ = (id) => document.getElementById(id);
  const form = $('open-form');
  const roomInput = $('pick-room');
  const roomBase = form.getAttribute('action'); // "/ui/"

  // ---- links follow the room typed in the form -----------------------------------------

  function updateLinks() {
    const room = roomInput.value.trim();
    if (!room) return;
    document.querySelectorAll('a[data-open-as]').forEach((a) => {
      a.href = roomBase + encodeURIComponent(room) + '?id_user=' + encodeURIComponent(a.dataset.openAs);
    });
    const label = $('pair-room');
    if (label) label.textContent = room;
  }
  roomInput.addEventListener('input', updateLinks);
  updateLinks();

  // ---- live cluster and names ------------------------------------------------------------

  async function getJson(url) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    try {
      const response = await fetch(url, { signal: controller.signal, headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error(url + ': HTTP ' + response.status);
      return await response.json();
    } finally {
      clearTimeout(timer);
    }
  }

  function td(content, className) {
    const cell = document.createElement('td');
    if (className) cell.className = className;
    cell.append(content);
    return cell;
  }

  function code(text) {
    const c = document.createElement('code');
    c.textContent = text;
    return c;
  }

  function uptime(started) {
    const seconds = Math.max(0, Math.round(Date.now() / 1000 - Number(started)));
    if (!Number.isFinite(seconds)) return '?';
    if (seconds < 90) return seconds + ' s';
    if (seconds < 5400) return Math.round(seconds / 60) + ' min';
    return Math.round(seconds / 3600) + ' h';
  }

  function renderWorkers(workers) {
    const rows = workers.map((w) => {
      const tr = document.createElement('tr');
      tr.dataset.procid = w.procid;
      tr.append(
        td(code(String(w.procid))),
        td(String(w.host ?? ''), 'opt'),
        td(String(w.pid ?? ''), 'opt num'),
        td(String(w.sockets ?? 0), 'num'),
        td(String(w.rooms ?? 0), 'num'),
        td(uptime(w.started)),
      );
      return tr;
    });
    $('workers-body').replaceChildren(...rows);
    const sockets = workers.reduce((sum, w) => sum + (Number(w.sockets) || 0), 0);
    $('cluster-summary').textContent =
      workers.length + (workers.length === 1 ? ' worker' : ' workers') + ' · ' +
      sockets + (sockets === 1 ? ' socket' : ' sockets') + ' · updated ' +
      new Date().toLocaleTimeString();
  }

  // The rooms in use across the cluster (GET /rooms), each a link to its page as the user
  // picked in the form (in signed mode the page is the login's user: no id_user).
  function renderRooms(rooms) {
    const pick = $('pick-user');
    const items = rooms.map((r) => {
      const li = document.createElement('li');
      li.dataset.room = r.room;
      const a = document.createElement('a');
      a.href = roomBase + encodeURIComponent(r.room) + (pick ? '?id_user=' + encodeURIComponent(pick.value) : '');
      a.textContent = r.room;
      const count = document.createElement('span');
      count.className = 'muted';
      count.textContent = ' · ' + r.sockets + (r.sockets === 1 ? ' socket' : ' sockets');
      li.append(a, count);
      return li;
    });
    $('rooms-list').replaceChildren(...items);
    $('rooms-empty').hidden = rooms.length > 0;
  }

  function renderNames(users) {
    users.forEach((u) => {
      const row = document.querySelector('#users-body tr[data-id-user="' + CSS.escape(u.id_user) + '"]');
      if (!row) return;
      row.querySelector('.user-name').textContent = u.name;
      row.querySelector('.avatar').textContent = (u.name.trim().charAt(0) || '?').toUpperCase();
    });
  }

  async function poll() {
    if (!document.hidden) {
      const error = $('cluster-error');
      try {
        const [workers, users, rooms] = await Promise.all([
          getJson('/workers'), getJson('/users'), getJson('/rooms?limit=' + ROOMS_SHOWN),
        ]);
        renderWorkers(workers);
        renderNames(users);
        renderRooms(rooms);
        error.hidden = true;
      } catch (err) {
        error.textContent =
          'The cluster did not answer (' + (err.name === 'AbortError' ? 'timeout' : err.message) + '); retrying.';
        error.hidden = false;
      }
    }
    setTimeout(poll, POLL_MS); // after the previous poll ended: never two at a time
  }
  poll();
})();
