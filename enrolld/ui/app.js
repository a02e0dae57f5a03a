// SPDX-License-Identifier: MIT
// The fleet dashboard (docs/dashboard.md). Plain JavaScript, no library, no build step.
//
// The token the user pastes is kept in sessionStorage (this tab only) and sent in the
// Authorization header of every request: never in a URL. The API is the one of the server that
// served this page (relative URLs: it also works behind a reverse proxy under a prefix).
// Health changes live from GET /v1/events, read with fetch() and a stream reader because
// EventSource cannot send an Authorization header; after a drop the stream is resumed with
// Last-Event-ID, so no event is missed.
'use strict';

(() => {
	const TOKEN_KEY = 'edgeward.token';
	const API = '../v1/';
	const PAGE = 1000; // devices per request (the API's maximum)
	const MAX_DEVICES = 20000; // what one page of the dashboard loads
	const REFRESH_MS = 30000; // devices again (handshake times, counters)
	const STALL_MS = 35000; // the server sends a keepalive at least every 10 s
	const HEALTH = ['up', 'down', 'never', 'revoked'];

	const $ = (id) => document.getElementById(id);

	const st = {
		token: null,
		tenants: [], // as GET /v1/tenants
		devices: new Map(), // device_id -> device (GET /v1/devices)
		counts: new Map(), // tenant -> {tokens, tokensTotal, registrations} (null: not allowed)
		reinstated: new Set(), // device ids reinstated here or by an event: may enroll again
		lastSeq: {}, // device_id -> seq of the last event applied to it
		lastEventId: null,
		stream: null, // AbortController of the event stream
		streamGen: 0,
		refreshTimer: null,
		pending: new Map(), // device_id -> timer of a pending refresh
		truncated: false,
	};

	class ApiError extends Error {
		constructor(status, code, message) {
			super(message || `HTTP ${status}`);
			this.status = status;
			this.code = code || '';
		}
	}

	// ---- the API ------------------------------------------------------------------------

	function headers(extra) {
		return Object.assign({ Authorization: `Bearer ${st.token}`, Accept: 'application/json' }, extra);
	}

	async function api(method, path) {
		let r;
		try {
			r = await fetch(API + path, {
				method,
				headers: headers(),
				cache: 'no-store',
				credentials: 'omit',
				referrerPolicy: 'no-referrer',
			});
		} catch (e) {
			throw new ApiError(0, 'network', 'the control plane cannot be reached');
		}
		let body = null;
		try {
			body = await r.json();
		} catch (e) {
			body = null;
		}
		if (!r.ok) {
			const err = (body && body.error) || {};
			const ae = new ApiError(r.status, err.code, err.message);
			if (r.status === 401 && st.token) signOut(`The token was refused: ${ae.message}.`);
			throw ae;
		}
		return body;
	}

	// ---- sign in and out ----------------------------------------------------------------

	function showSignIn(message) {
		$('fleet').hidden = true;
		$('signout').hidden = true;
		$('live').hidden = true;
		$('who').textContent = '';
		$('signin').hidden = false;
		$('signin-error').textContent = message || '';
		$('token').value = '';
		$('token').focus();
	}

	function signOut(message) {
		sessionStorage.removeItem(TOKEN_KEY);
		st.token = null;
		stopStream();
		clearInterval(st.refreshTimer);
		st.refreshTimer = null;
		for (const t of st.pending.values()) clearTimeout(t);
		st.pending.clear();
		st.tenants = [];
		st.devices.clear();
		st.counts.clear();
		st.reinstated.clear();
		st.lastSeq = {};
		st.lastEventId = null;
		$('tenants').replaceChildren();
		$('devices').tBodies[0].replaceChildren();
		showSignIn(message);
	}

	async function signIn(token) {
		st.token = token;
		$('signin-button').disabled = true;
		try {
			await loadTenants();
		} catch (e) {
			st.token = null;
			$('signin-button').disabled = false;
			if (e.status === 401) {
				$('signin-error').textContent = 'Unknown or revoked token.';
			} else if (e.status === 403) {
				$('signin-error').textContent =
					'This token may not read the fleet (a provisioning token?): use an admin or tenant token.';
			} else {
				$('signin-error').textContent = `Cannot sign in: ${e.message}.`;
			}
			return;
		}
		$('signin-button').disabled = false;
		sessionStorage.setItem(TOKEN_KEY, token);
		$('signin').hidden = true;
		$('fleet').hidden = false;
		$('signout').hidden = false;
		startStream();
		await refreshAll();
		clearInterval(st.refreshTimer);
		st.refreshTimer = setInterval(() => refreshAll().catch(() => {}), REFRESH_MS);
	}

	// ---- loading ------------------------------------------------------------------------

	async function loadTenants() {
		const body = await api('GET', 'tenants');
		st.tenants = (body.tenants || []).slice().sort((a, b) => a.name.localeCompare(b.name));
	}

	async function loadDevices() {
		const all = new Map();
		let cursor = null;
		do {
			const q = `devices?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
			const body = await api('GET', q);
			for (const d of body.devices || []) all.set(d.device_id, d);
			cursor = body.next_cursor;
		} while (cursor && all.size < MAX_DEVICES);
		st.truncated = Boolean(cursor);
		st.devices = all;
	}

	// Tokens and registrations of one tenant; a list the token may not read is null.
	async function loadCounts(name) {
		const t = encodeURIComponent(name);
		const get = (path, key) =>
			api('GET', path).then(
				(b) => b[key] || [],
				(e) => {
					if (e.status === 403) return null;
					throw e;
				},
			);
		const [tokens, regs] = await Promise.all([
			get(`tenants/${t}/tokens`, 'tokens'),
			get(`tenants/${t}/registrations`, 'registrations'),
		]);
		const now = Date.now() / 1000;
		st.counts.set(name, {
			tokens: tokens && tokens.filter((k) => !k.revoked && k.uses_left > 0 && (!k.expires || k.expires > now)).length,
			tokensTotal: tokens && tokens.length,
			registrations: regs && regs.length,
		});
	}

	async function refreshAll() {
		try {
			await loadTenants();
			await loadDevices();
			await Promise.all(st.tenants.map((t) => loadCounts(t.name)));
			render();
		} catch (e) {
			if (e.status !== 401) notice(`Could not load the fleet: ${e.message}.`, 'error');
		}
	}

	// One device again, soon (several events for it in a burst: one request).
	function refreshDevice(id) {
		if (st.pending.has(id)) return;
		st.pending.set(
			id,
			setTimeout(async () => {
				st.pending.delete(id);
				try {
					const d = await api('GET', `devices/${encodeURIComponent(id)}`);
					const known = st.devices.has(id);
					st.devices.set(id, d);
					if (!known) await loadCounts(d.tenant).catch(() => {});
					render();
				} catch (e) {
					if (e.status === 404) {
						st.devices.delete(id);
						render();
					}
				}
			}, 300),
		);
	}

	// ---- the event stream ---------------------------------------------------------------

	function setLive(state, text) {
		const el = $('live');
		el.hidden = false;
		el.dataset.state = state;
		el.textContent = text;
	}

	function stopStream() {
		st.streamGen++;
		if (st.stream) st.stream.abort();
		st.stream = null;
	}

	// Parse server-sent events out of a stream of text chunks (the WHATWG rules: fields id,
	// event, data; comment lines start with ':'; a blank line ends an event).
	function sseParser(onEvent) {
		let buf = '';
		let ev = { id: null, type: 'message', data: [] };
		return (chunk) => {
			buf += chunk;
			let nl;
			while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
				if (buf[nl] === '\r' && nl === buf.length - 1) break; // a \n may follow in the next chunk
				const line = buf.slice(0, nl);
				buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
				if (line === '') {
					if (ev.data.length) onEvent(ev);
					ev = { id: null, type: 'message', data: [] };
					continue;
				}
				if (line.startsWith(':')) continue;
				const c = line.indexOf(':');
				const field = c < 0 ? line : line.slice(0, c);
				let value = c < 0 ? '' : line.slice(c + 1);
				if (value.startsWith(' ')) value = value.slice(1);
				if (field === 'id') ev.id = value;
				else if (field === 'event') ev.type = value;
				else if (field === 'data') ev.data.push(value);
			}
		};
	}

	async function startStream() {
		stopStream();
		const gen = st.streamGen;
		let delay = 1000;
		while (gen === st.streamGen && st.token) {
			const ctl = new AbortController();
			st.stream = ctl;
			let stall = null;
			const kick = () => {
				clearTimeout(stall);
				stall = setTimeout(() => ctl.abort(), STALL_MS);
			};
			try {
				const h = headers({ Accept: 'text/event-stream' });
				if (st.lastEventId !== null) h['Last-Event-ID'] = st.lastEventId;
				kick();
				const r = await fetch(`${API}events`, {
					headers: h,
					cache: 'no-store',
					credentials: 'omit',
					referrerPolicy: 'no-referrer',
					signal: ctl.signal,
				});
				if (r.status === 401) {
					signOut('The token was refused.');
					return;
				}
				if (!r.ok || !r.body) throw new ApiError(r.status);
				const resumed = st.lastEventId !== null;
				setLive('on', 'live');
				delay = 1000;
				// After a drop: what changed meanwhile beyond the events (handshakes, counters).
				if (resumed) refreshAll();
				const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
				const feed = sseParser(onEvent);
				for (;;) {
					const { value, done } = await reader.read();
					if (done) break;
					kick();
					feed(value);
				}
			} catch (e) {
				// dropped, refused or stalled: try again below
			} finally {
				clearTimeout(stall);
			}
			if (gen !== st.streamGen || !st.token) return;
			setLive('retry', 'reconnecting');
			await new Promise((res) => setTimeout(res, delay));
			delay = Math.min(delay * 2, 10000);
		}
	}

	function onEvent(ev) {
		if (ev.id !== null && ev.id !== '') st.lastEventId = ev.id;
		let e;
		try {
			e = JSON.parse(ev.data.join('\n'));
		} catch (err) {
			return;
		}
		const id = e.device_id;
		if (!id) return;
		const d = st.devices.get(id);
		st.lastSeq[id] = e.seq;
		if (d) {
			switch (e.type) {
				case 'up':
				case 'down':
					if (d.state === 'active') {
						d.health = e.type;
						d.since = e.time;
					}
					break;
				case 'revoked':
					d.state = 'revoked';
					d.health = 'revoked';
					d.revoked_at = e.time;
					st.reinstated.delete(id);
					break;
				case 'reinstated':
					st.reinstated.add(id);
					break;
				default:
					break;
			}
			render();
		}
		// the details (handshake, counters, a new device) from the API
		refreshDevice(id);
	}

	// ---- revoke and reinstate -----------------------------------------------------------

	function confirmDialog(title, text, okLabel) {
		const dlg = $('confirm');
		$('confirm-title').textContent = title;
		$('confirm-text').textContent = text;
		$('confirm-ok').textContent = okLabel;
		return new Promise((resolve) => {
			const done = (v) => {
				$('confirm-ok').removeEventListener('click', ok);
				$('confirm-cancel').removeEventListener('click', cancel);
				dlg.removeEventListener('cancel', cancel);
				if (dlg.open) dlg.close();
				resolve(v);
			};
			const ok = () => done(true);
			const cancel = (ev) => {
				if (ev) ev.preventDefault();
				done(false);
			};
			$('confirm-ok').addEventListener('click', ok);
			$('confirm-cancel').addEventListener('click', cancel);
			dlg.addEventListener('cancel', cancel); // Escape
			dlg.showModal();
			$('confirm-cancel').focus();
		});
	}

	async function revoke(d) {
		const yes = await confirmDialog(
			`Revoke device ${d.device_id}?`,
			`Device ${d.device_id} of ${d.tenant} (${d.address}) is cut off at once: its peer is removed ` +
				'and its TPM identity may not enroll again until it is reinstated.',
			'Revoke',
		);
		if (!yes) return;
		try {
			const nd = await api('POST', `devices/${encodeURIComponent(d.device_id)}/revoke`);
			st.devices.set(nd.device_id, nd);
			st.reinstated.delete(nd.device_id);
			notice(`Device ${nd.device_id} revoked.`, 'ok');
		} catch (e) {
			notice(`Device ${d.device_id} was not revoked: ${e.message}.`, 'error');
		}
		render();
	}

	async function reinstate(d) {
		const yes = await confirmDialog(
			`Reinstate device ${d.device_id}?`,
			`The revocation of device ${d.device_id} of ${d.tenant} is lifted: it may enroll again ` +
				'(with a fresh attestation) and gets its old address back. Until then it stays revoked.',
			'Reinstate',
		);
		if (!yes) return;
		try {
			const nd = await api('POST', `devices/${encodeURIComponent(d.device_id)}/reinstate`);
			st.devices.set(nd.device_id, nd);
			st.reinstated.add(nd.device_id);
			notice(`Device ${nd.device_id} reinstated: it may enroll again.`, 'ok');
		} catch (e) {
			notice(`Device ${d.device_id} was not reinstated: ${e.message}.`, 'error');
		}
		render();
	}

	// ---- rendering ----------------------------------------------------------------------

	function el(tag, props, ...children) {
		const n = document.createElement(tag);
		if (props) {
			for (const [k, v] of Object.entries(props)) {
				if (v === undefined || v === null) continue;
				if (k === 'class') n.className = v;
				else if (k === 'text') n.textContent = v;
				else if (k.startsWith('data-')) n.setAttribute(k, v);
				else n[k] = v;
			}
		}
		for (const c of children) if (c !== null && c !== undefined) n.append(c);
		return n;
	}

	function notice(text, kind) {
		const n = $('notice');
		n.textContent = text;
		n.dataset.kind = kind || 'info';
		n.hidden = false;
	}

	function ago(t) {
		if (!t) return '—';
		const s = Math.max(0, Math.round(Date.now() / 1000 - t));
		if (s < 60) return `${s} s ago`;
		if (s < 3600) return `${Math.floor(s / 60)} min ago`;
		if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
		return `${Math.floor(s / 86400)} d ago`;
	}

	function stamp(t) {
		return t ? new Date(t * 1000).toLocaleString() : '';
	}

	function badge(health) {
		return el('span', { class: 'badge', 'data-health': health, text: health });
	}

	function healthCounts(name) {
		const c = { up: 0, down: 0, never: 0, revoked: 0 };
		for (const d of st.devices.values()) if (!name || d.tenant === name) c[d.health] = (c[d.health] || 0) + 1;
		return c;
	}

	function countText(v, what) {
		if (v === null || v === undefined) return 'not visible to this token';
		return `${v} ${what}${v === 1 ? '' : 's'}`;
	}

	function renderTenants() {
		const box = $('tenants');
		const cards = st.tenants.map((t) => {
			const c = healthCounts(t.name);
			const k = st.counts.get(t.name) || {};
			const tokens =
				k.tokens === null || k.tokens === undefined
					? countText(null)
					: `${k.tokens} usable (${k.tokensTotal} in all)`;
			return el(
				'article',
				{ class: 'tenant', 'data-tenant': t.name },
				el('h3', null, el('span', { text: t.name }), badge(t.interface_up ? 'up' : 'down')),
				el('p', { class: 'meta', text: `${t.prefix}${t.prefix6 ? ` · ${t.prefix6}` : ''} · ${t.interface} · :${t.listen_port}` }),
				el('div', { class: 'counts' }, ...HEALTH.map((h) => el('span', { class: 'badge', 'data-health': h, 'data-count': h, text: `${c[h]} ${h}` }))),
				el(
					'dl',
					null,
					el('dt', { text: 'Tokens' }),
					el('dd', { class: 'tokens', text: tokens }),
					el('dt', { text: 'Registrations' }),
					el('dd', { class: 'registrations', text: countText(k.registrations, 'EK') }),
					el('dt', { text: 'Endpoint' }),
					el('dd', { text: t.endpoint || '—' }),
				),
			);
		});
		box.replaceChildren(...cards);
		const sel = $('f-tenant');
		const cur = sel.value;
		sel.replaceChildren(el('option', { value: '', text: 'All tenants' }), ...st.tenants.map((t) => el('option', { value: t.name, text: t.name })));
		sel.value = st.tenants.some((t) => t.name === cur) ? cur : '';
		$('who').textContent =
			st.tenants.length === 1 ? `signed in · sees tenant ${st.tenants[0].name}` : `signed in · sees ${st.tenants.length} tenants`;
	}

	function matches(d) {
		const t = $('f-tenant').value;
		const h = $('f-health').value;
		const k = $('f-kind').value;
		const q = $('search').value.trim().toLowerCase();
		if (t && d.tenant !== t) return false;
		if (h && d.health !== h) return false;
		if (k && d.attestation !== k) return false;
		if (!q) return true;
		return [d.device_id, d.tenant, d.address, d.address6, d.public_key, d.ek_id, d.health]
			.filter(Boolean)
			.some((v) => String(v).toLowerCase().includes(q));
	}

	function cell(label, cls, ...children) {
		return el('td', { 'data-label': label, class: cls }, el('div', { class: 'cell' }, ...children));
	}

	function deviceRow(d) {
		const id = d.device_id;
		const action =
			d.state === 'active'
				? el('button', { type: 'button', class: 'small danger revoke', text: 'Revoke', onclick: () => revoke(d) })
				: el('button', { type: 'button', class: 'small quiet reinstate', text: 'Reinstate', onclick: () => reinstate(d) });
		const note = st.reinstated.has(id) ? el('span', { class: 'note reinstated', text: 'reinstated: may enroll again' }) : null;
		return el(
			'tr',
			{ 'data-device-id': id, 'data-tenant': d.tenant, 'data-state': d.state, 'data-seq': st.lastSeq[id] || '' },
			cell('Device', 'id', el('strong', { text: id }), el('span', { class: 'key', title: d.public_key, text: `${(d.public_key || '').slice(0, 12)}…` })),
			cell('Tenant', 'tenant', d.tenant),
			cell('Address', 'address', el('span', { class: 'addr', text: d.address }), d.address6 ? el('span', { class: 'addr6', text: d.address6 }) : null),
			cell('Health', 'health', badge(d.health), note),
			cell('Last handshake', 'handshake', el('span', { title: stamp(d.last_handshake), 'data-time': d.last_handshake || '', text: ago(d.last_handshake) })),
			cell('Attestation', 'kind', d.attestation || '—'),
			cell('Since', 'since', el('span', { title: stamp(d.since || d.revoked_at), 'data-time': d.since || d.revoked_at || '', text: ago(d.since || d.revoked_at) })),
			cell('', 'actions', action),
		);
	}

	function render() {
		renderTenants();
		const rows = [];
		for (const d of st.devices.values()) if (matches(d)) rows.push(d);
		rows.sort((a, b) => Number(a.device_id) - Number(b.device_id));
		$('devices').tBodies[0].replaceChildren(...rows.map(deviceRow));
		$('empty').hidden = rows.length > 0;
		const c = healthCounts(null);
		$('summary').textContent =
			`${rows.length} of ${st.devices.size} devices shown · ${c.up} up · ${c.down} down · ${c.never} never · ${c.revoked} revoked` +
			(st.truncated ? ` · only the first ${MAX_DEVICES} are loaded` : '');
	}

	// Relative times age without a request.
	function tick() {
		for (const n of document.querySelectorAll('#devices [data-time]')) {
			const t = Number(n.dataset.time);
			if (t) n.textContent = ago(t);
		}
	}

	// ---- start --------------------------------------------------------------------------

	function init() {
		$('signin-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			const t = $('token').value.trim();
			if (t) signIn(t);
		});
		$('signout').addEventListener('click', () => signOut(''));
		for (const id of ['search', 'f-tenant', 'f-health', 'f-kind']) $(id).addEventListener('input', render);
		setInterval(tick, 5000);
		const saved = sessionStorage.getItem(TOKEN_KEY);
		if (saved) {
			$('signin').hidden = true;
			signIn(saved).then(() => {
				if (!st.token) showSignIn('Sign in again.');
			});
		} else {
			showSignIn('');
		}
	}

	init();
})();
