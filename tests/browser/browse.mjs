#!/usr/bin/env node
// browse.mjs: drive chatd's chat page (GET /) in headless Chromium, one step after
// another, for tests/chatd-browser.bats. The test script starts the servers and does the
// shell side (curl, chat-listen, restarts); this does what a person at the page would do,
// and waits for what they would see. ready/await hand the turn back and forth.
//
//   node tests/browser/browse.mjs STEP...
//
//   open URL        open URL in a new window (own storage); later steps act on it
//   page N          act on the Nth window opened (1 is the first)
//   name TEXT       type TEXT into the Name field
//   chan NAME       type NAME into the Channel field and press Enter
//   say TEXT        type TEXT into the message box and press Enter
//   key KEY         press KEY (Tab, Shift+Tab, Enter...) where the focus is
//   type TEXT       type TEXT where the focus is
//   state STATE     wait until the page says STATE (connecting, live, reconnecting, closed)
//   see TEXT        wait until a line of the log contains TEXT
//   ready FILE      create FILE: the test script may go on
//   await FILE      wait until the test script creates FILE
//   log             print the log on screen, one line per entry, without times:
//                   "msg NAME: TEXT", "msg NAME ✓: TEXT" (verified sender), "msg TEXT"
//                   (no name), "note TEXT", "gap TEXT", "err TEXT"
//   eval EXPR       print the value of the JavaScript expression EXPR in the page
//   shot FILE WxH   resize the window to W x H and save a screenshot to FILE
//   offline|online  take the window's network away, or give it back
//
// Waits give up after $BROWSE_TIMEOUT ms (default 10000; await: twice that). On failure
// it prints the step, the page's state line and its log to stderr and exits 1; it also
// fails when the page throws. Chromium is $CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import fs from 'node:fs';

const ARGS = { open: 1, page: 1, name: 1, chan: 1, say: 1, key: 1, type: 1, state: 1, see: 1,
	ready: 1, await: 1, log: 0, eval: 1, shot: 2, offline: 0, online: 0 };
const TIMEOUT = Number(process.env.BROWSE_TIMEOUT) || 10000;

function parse(argv) {
	const steps = [];
	for (let i = 0; i < argv.length;) {
		const name = argv[i], n = ARGS[name];
		if (n === undefined) throw new Error(`unknown step "${name}" (see the top of browse.mjs)`);
		if (i + n >= argv.length) throw new Error(`step "${name}" needs ${n} argument(s)`);
		steps.push({ name, args: argv.slice(i + 1, i + 1 + n) });
		i += 1 + n;
	}
	return steps;
}

// The visible log as text lines (see "log" above). Runs in the page.
function logLines() {
	const log = document.querySelector('#logs > .log:not([hidden])');
	if (!log) return [];
	return [...log.children].map((li) => {
		const kind = li.classList.contains('gap') ? 'gap' : li.className.split(' ')[0];
		const text = li.querySelector('.text')?.textContent ?? '';
		const who = li.querySelector('.who');
		if (!who) return `${kind} ${text}`;
		return `${kind} ${who.textContent}${li.querySelector('.verified') ? ' ✓' : ''}: ${text}`;
	});
}

// Whether a line of the visible log contains text. Runs in the page.
const seesText = new Function('text', `return (${logLines})().some((l) => l.includes(text));`);

async function waitFile(file, ms) {
	for (const end = Date.now() + ms; !fs.existsSync(file);) {
		if (Date.now() > end) throw new Error(`${file} did not appear within ${ms} ms`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

async function run(browser, steps) {
	const pages = [];
	let page = null;
	const errors = [];
	const current = () => {
		if (!page) throw new Error('no page yet: start with "open URL"');
		return page;
	};
	for (const [i, { name, args }] of steps.entries()) {
		try {
			switch (name) {
			case 'open': {
				const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
				page = await context.newPage();
				const n = pages.push(page);
				page.on('pageerror', (e) => errors.push(`page ${n} threw: ${e.message}`));
				page.on('console', (m) => {
					if (m.type() === 'error' && !/WebSocket connection to .* failed/.test(m.text()))
						process.stderr.write(`page ${n} console: ${m.text()}\n`);
				});
				await page.goto(args[0]);
				break;
			}
			case 'page':
				page = pages[Number(args[0]) - 1];
				if (!page) throw new Error(`there is no page ${args[0]}`);
				break;
			case 'name':
				await current().fill('#name', args[0]);
				break;
			case 'chan':
				await current().fill('#chan', args[0]);
				await current().press('#chan', 'Enter');
				break;
			case 'say':
				await current().focus('#text');
				await current().keyboard.type(args[0]);
				await current().keyboard.press('Enter');
				break;
			case 'key':
				await current().keyboard.press(args[0]);
				break;
			case 'type':
				await current().keyboard.type(args[0]);
				break;
			case 'state':
				await current().waitForSelector(`#state[data-state="${args[0]}"]`, { timeout: TIMEOUT });
				break;
			case 'see':
				await current().waitForFunction(seesText, args[0], { timeout: TIMEOUT, polling: 50 });
				break;
			case 'ready':
				fs.writeFileSync(args[0], '');
				break;
			case 'await':
				await waitFile(args[0], 2 * TIMEOUT);
				break;
			case 'log':
				for (const l of await current().evaluate(logLines)) console.log(l);
				break;
			case 'eval': {
				const v = await current().evaluate(args[0]);
				console.log(typeof v === 'string' ? v : JSON.stringify(v));
				break;
			}
			case 'shot': {
				const [w, h] = args[1].split('x').map(Number);
				await current().setViewportSize({ width: w, height: h });
				await current().screenshot({ path: args[0] });
				break;
			}
			case 'offline':
			case 'online':
				await current().context().setOffline(name === 'offline');
				break;
			}
		} catch (e) {
			process.stderr.write(`browse: step ${i + 1} (${[name, ...args].join(' ')}) failed: ${e.message.split('\n')[0]}\n`);
			if (page) {
				const state = await page.evaluate(() => {
					const s = document.getElementById('state');
					return s ? `${s.dataset.state}: ${s.textContent}` : '(no #state)';
				}).catch(() => '?');
				process.stderr.write(`state: ${state}\nlog:\n`);
				for (const l of await page.evaluate(logLines).catch(() => [])) process.stderr.write(`  ${l}\n`);
			}
			for (const err of errors) process.stderr.write(`${err}\n`);
			return 1;
		}
	}
	for (const err of errors) process.stderr.write(`${err}\n`);
	return errors.length ? 1 : 0;
}

let steps;
try {
	steps = parse(process.argv.slice(2));
} catch (e) {
	process.stderr.write(`browse: ${e.message}\n`);
	process.exit(64);
}
const browser = await chromium.launch({
	executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
	args: ['--no-sandbox'], // the tests run as root in CI
});
let status = 1;
try {
	status = await run(browser, steps);
} finally {
	await browser.close();
}
process.exit(status);
