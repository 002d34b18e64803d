// The sandbox chat page: shows the conversation the server reports and sends what the user
// types and taps. Message HTML comes from the server already made safe (renderTelegramHtml);
// everything else is put into the page as text.
'use strict';

const list = document.getElementById('messages');
const empty = document.getElementById('empty');
const statusLine = document.getElementById('status');
const form = document.getElementById('composer');
const input = document.getElementById('text');
const commandBar = document.getElementById('commands');
const toast = document.getElementById('toast');
let version = null;
// Rendered messages by id, with what they were rendered from: only changed ones are replaced,
// so a screen reader announces new and edited messages, not the whole conversation again.
const rendered = new Map();
let lastNotice = null;
let toastTimer;

async function post(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(answer.error || `HTTP ${res.status}`);
  return answer;
}

function showToast(text) {
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toast.hidden = true; }, 3000);
}

function renderMessage(m) {
  const li = document.createElement('li');
  li.className = `msg ${m.from}`;
  li.dataset.messageId = String(m.id);
  const bubble = document.createElement('div');
  bubble.className = 'bubble';
  if (m.photo) {
    const img = document.createElement('img');
    img.src = m.photo;
    img.alt = 'Chart sent by the bot';
    bubble.appendChild(img);
  }
  const text = document.createElement('div');
  text.className = 'text';
  text.innerHTML = m.html;
  bubble.appendChild(text);
  if (m.edits > 0) {
    const edited = document.createElement('span');
    edited.className = 'edited';
    edited.textContent = 'edited';
    bubble.appendChild(edited);
  }
  li.appendChild(bubble);
  if (m.buttons.length > 0) {
    const keyboard = document.createElement('div');
    keyboard.className = 'keyboard';
    for (const row of m.buttons) {
      const rowEl = document.createElement('div');
      rowEl.className = 'row';
      for (const b of row) {
        let el;
        if (b.url) {
          el = document.createElement('a');
          el.href = b.url;
          el.target = '_blank';
          el.rel = 'noopener noreferrer';
        } else {
          el = document.createElement('button');
          el.type = 'button';
          el.addEventListener('click', () => tap(el, m.id, b.data));
        }
        el.textContent = b.text;
        rowEl.appendChild(el);
      }
      keyboard.appendChild(rowEl);
    }
    li.appendChild(keyboard);
  }
  return li;
}

async function tap(button, messageId, data) {
  button.disabled = true;
  try {
    await post('/api/tap', { messageId, data });
  } catch (err) {
    showToast(err.message);
  } finally {
    // The bot answers a repeated tap itself ("Already decided"), as Telegram lets you tap twice.
    button.disabled = false;
  }
}

function render(state) {
  const nearBottom = list.parentElement.scrollHeight - list.parentElement.scrollTop - list.parentElement.clientHeight < 80;
  let previous = null;
  for (const m of state.messages) {
    const key = JSON.stringify(m);
    let entry = rendered.get(m.id);
    if (!entry || entry.key !== key) {
      const li = renderMessage(m);
      if (entry) entry.li.replaceWith(li);
      entry = { key, li };
      rendered.set(m.id, entry);
    }
    // Keep the DOM in the server's order (new messages go after the previous one).
    const expectedNext = previous ? previous.nextSibling : list.firstChild;
    if (entry.li !== expectedNext) list.insertBefore(entry.li, expectedNext);
    previous = entry.li;
  }
  empty.hidden = state.messages.length > 0;
  commandBar.replaceChildren(...state.commands.map((c) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = `/${c.command}`;
    b.title = c.description;
    b.addEventListener('click', () => { input.value = `/${c.command} `; input.focus(); });
    return b;
  }));
  const notice = state.notices.at(-1);
  if (notice && lastNotice !== null && notice.id !== lastNotice) showToast(notice.text);
  lastNotice = notice ? notice.id : 0;
  if (nearBottom) list.parentElement.scrollTop = list.parentElement.scrollHeight;
}

async function poll() {
  for (;;) {
    try {
      const res = await fetch(`/api/chat${version === null ? '' : `?since=${encodeURIComponent(version)}`}`);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const state = await res.json();
      statusLine.textContent = `Chatting with @${state.botName} (stand-ins on this machine; nothing leaves it)`;
      if (state.version !== version) {
        version = state.version;
        render(state);
      }
    } catch {
      statusLine.textContent = 'Disconnected; retrying…';
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text === '') return;
  input.value = '';
  try {
    await post('/api/send', { text });
  } catch (err) {
    input.value = text;
    showToast(err.message);
  }
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

poll();
