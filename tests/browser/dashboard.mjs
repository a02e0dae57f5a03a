// SPDX-License-Identifier: MIT
// The fleet dashboard in headless Chromium, driven by puppeteer-core (no browser download:
// Debian's chromium). Run by tests/integration/dashboard.sh, which starts the fleet and hands
// over, in the environment:
//
//   DASH_URL       the dashboard, https://<control plane>/ui/
//   DASH_SPKI      base64 SHA-256 of the server certificate's public key: Chromium trusts that
//                  key only (--ignore-certificate-errors-spki-list), nothing else
//   DASH_ADMIN, DASH_TENANT, DASH_TENANT_NAME, DASH_PROV   tokens (a tenant token for acme)
//   DASH_DEVICES   JSON [{gw, id, tenant, address}] of the enrolled gateways
//   DASH_REQ, DASH_REP   FIFOs: a line "cut 1", "restore 1", "cp-restart", "check-revoked 2"
//                  asks the shell to act; it answers "ok" or "fail <why>"
//   DASH_OUT       where screenshots go;  DASH_MODULES  the node_modules holding puppeteer-core
//
// Prints one "ok"/"FAIL" line per check; exits 1 if any failed.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const env = (k) => {
	const v = process.env[k];
	if (v === undefined || v === '') throw new Error(`${k} is not set`);
	return v;
};
const require = createRequire(path.join(env('DASH_MODULES'), 'node_modules', 'x.js'));
const puppeteer = require('puppeteer-core');

const URL0 = env('DASH_URL');
const ADMIN = env('DASH_ADMIN');
const TENANT = env('DASH_TENANT');
const TENANT_NAME = env('DASH_TENANT_NAME');
const PROV = env('DASH_PROV');
const DEVICES = JSON.parse(env('DASH_DEVICES'));
const OUT = env('DASH_OUT');
const CSP =
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const DOWN_WITHIN_MS = 20000; // 3 x keepalive (2 s) + a tick, plenty of slack; under the page's 30 s refresh

let fails = 0;
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
function check(desc, ok, detail) {
	console.log(`${ok ? 'ok  ' : 'FAIL'} ${desc}${!ok && detail ? ` (${detail})` : ''}`);
	if (!ok) fails++;
	return ok;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Ask the shell to do something to the fleet.
async function ask(line) {
	writeFileSync(env('DASH_REQ'), `${line}\n`);
	const answer = (await readFile(env('DASH_REP'), 'utf8')).trim();
	console.log(`     [${secs()} s] ${line}: ${answer}`);
	return answer;
}

// ---- what the browser reports ----------------------------------------------------------
// phase: which errors are expected now. 'outage' (enrolld restarting: the stream's fetch
// fails), 'forbidden' (the provisioning token is refused with 403). Anything else is a bug.
let phase = 'normal';
const problems = [];
const requests = [];
let navigations = 0;

function onProblem(kind, text) {
	const expected =
		(phase === 'outage' && /net::ERR_|Failed to fetch|NetworkError/.test(text)) ||
		(phase === 'forbidden' && /status of 403/.test(text));
	if (!expected) problems.push(`[${phase}] ${kind}: ${text}`);
}


async function shot(page, name) {
	mkdirSync(OUT, { recursive: true });
	const file = path.join(OUT, name);
	await page.screenshot({ path: file, fullPage: true });
	console.log(`     screenshot ${file}`);
}

// The health shown in a device's row ('' when the row is not there).
const health = (page, id) =>
	page.$eval(`tr[data-device-id="${id}"] td.health .badge`, (b) => b.dataset.health).catch(() => '');

async function waitHealth(page, id, want, ms) {
	const start = Date.now();
	try {
		await page.waitForSelector(`tr[data-device-id="${id}"] td.health .badge[data-health="${want}"]`, { timeout: ms });
		return Date.now() - start;
	} catch (e) {
		return -1;
	}
}

// Click what @sel names. The table is drawn again on every event of the stream (a health
// change may land between finding a row's button and clicking it), and a change of the
// viewport lays the page out again ("Node is either not clickable or not an Element" for a
// button without a box yet): wait until it is visible, retry a few times before giving up.
async function clickSel(page, sel) {
	for (let i = 0; ; i++) {
		try {
			await page.waitForSelector(sel, { visible: true, timeout: 5000 });
			await page.click(sel);
			return;
		} catch (e) {
			if (i >= 4) throw new Error(`cannot click ${sel}: ${e.message}`);
			await sleep(200);
		}
	}
}

async function signIn(page, token) {
	await page.waitForSelector('#signin:not([hidden]) #token', { timeout: 10000 });
	await page.type('#token', token);
	await clickSel(page, '#signin-button');
}

async function signOut(page) {
	await clickSel(page, '#signout');
	await page.waitForSelector('#signin:not([hidden])', { timeout: 5000 });
}

const rowIds = (page) => page.$$eval('#devices tbody tr', (rows) => rows.map((r) => r.dataset.deviceId));

async function run(browser) {
	const page = await browser.newPage();
	const cdp = await page.createCDPSession();
	await cdp.send('Log.enable');
	cdp.on('Log.entryAdded', ({ entry }) => {
		if (entry.level === 'error' || entry.source === 'security' || entry.source === 'violation')
			onProblem(`log/${entry.source}`, `${entry.text} ${entry.url || ''}`);
	});
	page.on('console', (m) => {
		if (m.type() === 'error' || m.type() === 'warn') onProblem(`console.${m.type()}`, m.text());
	});
	page.on('pageerror', (e) => onProblem('exception', String(e && e.message ? e.message : e)));
	await page.exposeFunction('__cspViolation', (v) => onProblem('csp', v));
	await page.evaluateOnNewDocument(() => {
		document.addEventListener('securitypolicyviolation', (e) =>
			window.__cspViolation(`${e.violatedDirective} blocked ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`),
		);
	});
	page.on('request', (r) => requests.push({ url: r.url(), method: r.method(), headers: r.headers(), at: Date.now() }));
	page.on('framenavigated', (f) => {
		if (f === page.mainFrame()) navigations++;
	});

	// ---- the page and its headers
	const assets = {};
	page.on('response', (r) => {
		const u = new URL(r.url());
		if (u.pathname.startsWith('/ui/')) assets[u.pathname] = { status: r.status(), headers: r.headers() };
	});
	const resp = await page.goto(URL0, { waitUntil: 'networkidle0' });
	const h = resp.headers();
	check('the page is served: 200 text/html', resp.status() === 200 && /^text\/html/.test(h['content-type'] || ''), `${resp.status()} ${h['content-type']}`);
	check('its Content-Security-Policy is the strict one', h['content-security-policy'] === CSP, h['content-security-policy']);
	check('X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer',
		h['x-content-type-options'] === 'nosniff' && h['referrer-policy'] === 'no-referrer');
	const js = assets['/ui/app.js'];
	const css = assets['/ui/app.css'];
	check('app.js and app.css come from enrolld as text/javascript and text/css, with nosniff and the CSP',
		js && css && /^text\/javascript/.test(js.headers['content-type']) && /^text\/css/.test(css.headers['content-type']) &&
			js.headers['x-content-type-options'] === 'nosniff' && js.headers['content-security-policy'] === CSP,
		JSON.stringify({ js: js && js.headers['content-type'], css: css && css.headers['content-type'] }));
	check('every request of the page goes to enrolld itself (no CDN)',
		requests.every((r) => new URL(r.url).origin === new URL(URL0).origin), requests.map((r) => r.url).join(' '));

	// ---- sign in with the admin token
	await signIn(page, ADMIN);
	const expectIds = DEVICES.map((d) => String(d.id)).sort();
	try {
		await page.waitForFunction((n) => document.querySelectorAll('#devices tbody tr').length === n, { timeout: 15000 }, DEVICES.length);
	} catch (e) {
		/* judged below */
	}
	check(`signed in with the admin token: the ${DEVICES.length} devices are listed`, JSON.stringify((await rowIds(page)).sort()) === JSON.stringify(expectIds), (await rowIds(page)).join(','));
	for (const d of DEVICES) {
		const addr = await page.$eval(`tr[data-device-id="${d.id}"] td.address .addr`, (n) => n.textContent).catch(() => '');
		const tenant = await page.$eval(`tr[data-device-id="${d.id}"] td.tenant`, (n) => n.textContent).catch(() => '');
		const kind = await page.$eval(`tr[data-device-id="${d.id}"] td.kind`, (n) => n.textContent).catch(() => '');
		check(`g${d.gw}: device ${d.id} of ${d.tenant} at ${d.address}, attestation tpm`, addr === d.address && tenant === d.tenant && kind === 'tpm', `${addr} ${tenant} ${kind}`);
	}
	const stored = await page.evaluate(() => sessionStorage.getItem('edgeward.token'));
	check('the token is kept in sessionStorage', stored === ADMIN);
	const local = await page.evaluate(() => localStorage.length);
	check('and not in localStorage', local === 0);
	for (const d of DEVICES) check(`g${d.gw} is shown up`, (await waitHealth(page, d.id, 'up', 20000)) >= 0, await health(page, d.id));
	const hs = await page.$eval(`tr[data-device-id="${DEVICES[0].id}"] td.handshake span`, (n) => n.textContent).catch(() => '');
	check(`a last handshake is shown ('${hs}')`, /s ago|min ago/.test(hs), hs);

	// tenants, tokens, registrations
	const card = (name, sel) => page.$eval(`article.tenant[data-tenant="${name}"] ${sel}`, (n) => n.textContent).catch(() => '');
	const tenantsShown = await page.$$eval('article.tenant', (a) => a.map((n) => n.dataset.tenant).sort());
	check('both tenants are shown to the admin', JSON.stringify(tenantsShown) === '["acme","globex"]', tenantsShown.join(','));
	const regs = {};
	for (const d of DEVICES) regs[d.tenant] = (regs[d.tenant] || 0) + 1;
	for (const t of Object.keys(regs)) {
		const r = await card(t, 'dd.registrations');
		check(`${t}: ${regs[t]} registration(s) counted`, r.startsWith(`${regs[t]} `), r);
	}
	const tok = await card('acme', 'dd.tokens');
	check(`acme: its enrollment token counted ('${tok}')`, tok.startsWith('1 usable (1 in all)'), tok);
	const tokG = await card('globex', 'dd.tokens');
	check(`globex: none ('${tokG}')`, tokG.startsWith('0 usable (0 in all)'), tokG);
	await shot(page, 'dashboard-desktop.png');

	// filters and search
	await page.select('#f-tenant', 'globex');
	check('filter by tenant: globex shows its one device', JSON.stringify(await rowIds(page)) === JSON.stringify(DEVICES.filter((d) => d.tenant === 'globex').map((d) => String(d.id))));
	await page.select('#f-tenant', '');
	await page.type('#search', DEVICES[1].address);
	check('search by address finds that device only', JSON.stringify(await rowIds(page)) === JSON.stringify([String(DEVICES[1].id)]), (await rowIds(page)).join(','));
	await page.$eval('#search', (n) => {
		n.value = '';
		n.dispatchEvent(new Event('input'));
	});
	await page.select('#f-health', 'down');
	check('filter by health: nobody is down yet', (await rowIds(page)).length === 0);
	await page.select('#f-health', '');

	// ---- a link is cut: the row turns down, live, without a reload
	const g1 = DEVICES[0];
	await page.evaluate(() => {
		window.__noReload = 'still here';
	});
	const navBefore = navigations;
	const seqBefore = await page.$eval(`tr[data-device-id="${g1.id}"]`, (r) => r.dataset.seq);
	check('cut g1\'s link', (await ask('cut 1')) === 'ok');
	let took = await waitHealth(page, g1.id, 'down', DOWN_WITHIN_MS);
	check(`g1's row turns down without a reload (${took} ms)`, took >= 0, await health(page, g1.id));
	const seqAfter = await page.$eval(`tr[data-device-id="${g1.id}"]`, (r) => r.dataset.seq).catch(() => '');
	check(`... from the event stream (event ${seqAfter}, before: '${seqBefore}')`, seqAfter !== '' && seqAfter !== seqBefore);
	check('... the page was not reloaded or navigated',
		(await page.evaluate(() => window.__noReload)) === 'still here' && navigations === navBefore);
	check('the other gateways stay up', (await health(page, DEVICES[1].id)) === 'up' && (await health(page, DEVICES[2].id)) === 'up');
	await page.select('#f-health', 'down');
	check('filter by health: down shows g1 only', JSON.stringify(await rowIds(page)) === JSON.stringify([String(g1.id)]));
	await page.select('#f-health', '');
	await shot(page, 'dashboard-desktop-g1-down.png');
	check('restore g1\'s link', (await ask('restore 1')) === 'ok');
	took = await waitHealth(page, g1.id, 'up', DOWN_WITHIN_MS);
	check(`g1's row turns up again (${took} ms)`, took >= 0, await health(page, g1.id));

	// ---- the stream drops (enrolld restarts): resumed with Last-Event-ID, nothing missed
	phase = 'outage';
	const streamsBefore = requests.filter((r) => new URL(r.url).pathname.endsWith('/v1/events')).length;
	check('enrolld killed and restarted', (await ask('cp-restart')) === 'ok');
	const isEvents = (r) => new URL(r.url).pathname.endsWith('/v1/events');
	for (let i = 0; i < 150; i++) {
		const live = await page.$eval('#live', (n) => n.dataset.state);
		if (live === 'on' && requests.filter(isEvents).length > streamsBefore) break;
		await sleep(200);
	}
	await sleep(500);
	phase = 'normal';
	const resumed = requests.filter(isEvents).slice(streamsBefore);
	const withId = resumed.filter((r) => /^[0-9]+$/.test(r.headers['last-event-id'] || ''));
	check(`the page reconnected to the event stream with Last-Event-ID (${resumed.length} attempt(s), ${withId.map((r) => r.headers['last-event-id']).join(',')})`, withId.length > 0);
	check('the live indicator says live again', (await page.$eval('#live', (n) => n.dataset.state)) === 'on');
	// a restarted enrolld judges health afresh: wait until it says up again before the cut
	for (const d of DEVICES) await waitHealth(page, d.id, 'up', 20000);
	const seqResumed = await page.$eval(`tr[data-device-id="${g1.id}"]`, (r) => r.dataset.seq);
	check('cut g1\'s link again', (await ask('cut 1')) === 'ok');
	took = await waitHealth(page, g1.id, 'down', DOWN_WITHIN_MS + 5000);
	check(`after the reconnection g1 turns down again, live (${took} ms)`, took >= 0, await health(page, g1.id));
	const seqDown = await page.$eval(`tr[data-device-id="${g1.id}"]`, (r) => r.dataset.seq).catch(() => '');
	check(`... by an event of the resumed stream (event ${seqDown}, before the cut: '${seqResumed}')`,
		seqDown !== '' && Number(seqDown) > Number(seqResumed || 0));
	check('restore g1\'s link', (await ask('restore 1')) === 'ok');
	took = await waitHealth(page, g1.id, 'up', DOWN_WITHIN_MS);
	check(`and up (${took} ms)`, took >= 0);
	check('still the same page (no reload)', (await page.evaluate(() => window.__noReload)) === 'still here');

	// ---- revoke g2 through the confirmation dialog
	const g2 = DEVICES[1];
	const posts = () => requests.filter((r) => r.method === 'POST').length;
	const postsBefore = posts();
	await clickSel(page, `tr[data-device-id="${g2.id}"] button.revoke`);
	await page.waitForSelector('dialog#confirm[open]', { timeout: 5000 });
	const dlgText = await page.$eval('#confirm-text', (n) => n.textContent);
	check('Revoke asks for a confirmation naming the device', dlgText.includes(`Device ${g2.id}`) && dlgText.includes(g2.address), dlgText);
	await clickSel(page, '#confirm-cancel');
	await sleep(300);
	check('Cancel closes it and revokes nothing', !(await page.$('dialog#confirm[open]')) && posts() === postsBefore && (await health(page, g2.id)) === 'up');
	await clickSel(page, `tr[data-device-id="${g2.id}"] button.revoke`);
	await page.waitForSelector('dialog#confirm[open]', { timeout: 5000 });
	await shot(page, 'dashboard-desktop-confirm.png');
	await clickSel(page, '#confirm-ok');
	took = await waitHealth(page, g2.id, 'revoked', 10000);
	check(`confirmed: g2's row shows revoked (${took} ms)`, took >= 0 &&
		(await page.$eval(`tr[data-device-id="${g2.id}"]`, (r) => r.dataset.state)) === 'revoked');
	const revokeReq = requests.filter((r) => r.method === 'POST').slice(postsBefore);
	check('one POST .../revoke, with the bearer header, no token in its URL',
		revokeReq.length === 1 && revokeReq[0].url.endsWith(`/v1/devices/${g2.id}/revoke`) &&
			revokeReq[0].headers.authorization === `Bearer ${ADMIN}`);
	const apiSays = await ask(`check-revoked 2`);
	check('the API confirms g2 is revoked and its peer is gone', apiSays === 'ok', apiSays);
	check('g1 and g3 stay up', (await health(page, g1.id)) === 'up' && (await health(page, DEVICES[2].id)) === 'up');

	// ---- reinstate it
	await clickSel(page, `tr[data-device-id="${g2.id}"] button.reinstate`);
	await page.waitForSelector('dialog#confirm[open]', { timeout: 5000 });
	await clickSel(page, '#confirm-ok');
	try {
		await page.waitForSelector(`tr[data-device-id="${g2.id}"] .reinstated`, { timeout: 10000 });
	} catch (e) {
		/* judged below */
	}
	const note = await page.$eval('#notice', (n) => n.textContent).catch(() => '');
	check(`reinstated through the dialog ('${note}')`, /reinstated/.test(note) && Boolean(await page.$(`tr[data-device-id="${g2.id}"] .reinstated`)));
	const reinstSays = await ask('check-reinstated 2');
	check('the API confirms the revocation is lifted', reinstSays === 'ok', reinstSays);

	await sleep(1500);
	check('the reinstated note stays', Boolean(await page.$(`tr[data-device-id="${g2.id}"] .reinstated`)),
		await page.$eval(`tr[data-device-id="${g2.id}"]`, (r) => r.outerHTML).catch(() => 'no row'));

	// ---- a phone
	// isMobile makes puppeteer reload the page: the token in sessionStorage signs in again
	await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
	try {
		await page.waitForFunction((n) => document.querySelectorAll('#devices tbody tr').length === n, { timeout: 15000 }, DEVICES.length);
	} catch (e) {
		/* judged below */
	}
	check('after a reload the tab is still signed in (sessionStorage)', (await rowIds(page)).length === DEVICES.length &&
		!(await page.$eval('#fleet', (n) => n.hidden)));
	await sleep(300);
	const layout = await page.evaluate(() => ({
		overflow: document.documentElement.scrollWidth - window.innerWidth,
		thead: getComputedStyle(document.querySelector('#devices thead')).display,
		row: getComputedStyle(document.querySelector('#devices tbody tr')).display,
	}));
	check(`phone width: no sideways scrolling (${layout.overflow} px), devices as cards`, layout.overflow <= 0 && layout.thead === 'none' && layout.row === 'block', JSON.stringify(layout));
	await shot(page, 'dashboard-phone.png');
	await page.setViewport({ width: 1280, height: 860 });

	// ---- sign out; a tenant token sees its tenant only
	await signOut(page);
	check('signing out forgets the token', (await page.evaluate(() => sessionStorage.getItem('edgeward.token'))) === null);
	await signIn(page, TENANT);
	const mine = DEVICES.filter((d) => d.tenant === TENANT_NAME).map((d) => String(d.id)).sort();
	try {
		await page.waitForFunction((n) => document.querySelectorAll('#devices tbody tr').length === n && document.querySelectorAll('article.tenant').length === 1, { timeout: 15000 }, mine.length);
	} catch (e) {
		/* judged below */
	}
	const seen = (await rowIds(page)).sort();
	check(`the ${TENANT_NAME} token sees ${TENANT_NAME}'s devices only (${seen.join(',')})`, JSON.stringify(seen) === JSON.stringify(mine));
	const tcards = await page.$$eval('article.tenant', (a) => a.map((n) => n.dataset.tenant));
	check(`and only the ${TENANT_NAME} tenant`, JSON.stringify(tcards) === JSON.stringify([TENANT_NAME]), tcards.join(','));
	const opts = await page.$$eval('#f-tenant option', (o) => o.map((n) => n.value).filter(Boolean));
	check('the tenant filter offers it alone', JSON.stringify(opts) === JSON.stringify([TENANT_NAME]), opts.join(','));
	await shot(page, 'dashboard-tenant.png');
	await signOut(page);

	// ---- a token that may not read the fleet (provisioning: 403): told so, nothing breaks
	phase = 'forbidden';
	await signIn(page, PROV);
	try {
		await page.waitForFunction(() => document.getElementById('signin-error').textContent !== '', { timeout: 10000 });
	} catch (e) {
		/* judged below */
	}
	phase = 'normal';
	const err = await page.$eval('#signin-error', (n) => n.textContent);
	check(`a provisioning token is refused politely ('${err}')`, /may not read the fleet/.test(err) && (await page.$eval('#fleet', (n) => n.hidden)));
	check('and is not kept', (await page.evaluate(() => sessionStorage.getItem('edgeward.token'))) === null);

	// ---- what the browser saw, all along
	const tokens = [ADMIN, TENANT, PROV];
	const leaky = requests.filter((r) => tokens.some((t) => r.url.includes(t) || r.url.includes(encodeURIComponent(t))));
	check(`no token in any URL (${requests.length} requests)`, leaky.length === 0, leaky.map((r) => r.url).join(' '));
	const apiReqs = requests.filter((r) => new URL(r.url).pathname.startsWith('/v1/'));
	check(`every API request carries a bearer header (${apiReqs.length})`, apiReqs.length > 0 && apiReqs.every((r) => /^Bearer /.test(r.headers.authorization || '')));
	check('no console error, exception or CSP violation', problems.length === 0, problems.join(' | '));
	console.log(`${fails} browser check(s) failed`);
	return fails === 0 ? 0 : 1;
}

// ---- start: a fresh profile, removed afterwards ----------------------------------------
const userDataDir = mkdtempSync(path.join(tmpdir(), 'dashboard-chromium-'));
const args = [
	`--user-data-dir=${userDataDir}`,
	`--ignore-certificate-errors-spki-list=${env('DASH_SPKI')}`,
	'--disable-dev-shm-usage',
	'--no-first-run',
	'--no-default-browser-check',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
];
if (process.getuid && process.getuid() === 0) args.push('--no-sandbox'); // root: no user namespace sandbox

const browser = await puppeteer.launch({
	executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
	headless: true,
	args,
	defaultViewport: { width: 1280, height: 860 },
});
let rc = 1;
try {
	rc = await run(browser);
} catch (e) {
	check(`the browser session ran to its end`, false, e && e.stack ? e.stack : String(e));
	rc = 1;
} finally {
	await browser.close().catch(() => {});
	rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(rc);
