// The netlab web inbox: the lab's mail over its HTTP API (Mailpit's v1 shape)
// and its event stream, /api/v1/events.  Plain ES module, no build step.
//
// Safety rule of this file: mail data (subjects, addresses, names, headers,
// bodies) only ever reaches the page through textContent, attribute values
// set with setAttribute on inert attributes, or the sandboxed iframe of
// /view/{ID}.html.  Never through innerHTML.

import { parseHeaders } from "./headers.js";
import * as mailpit from "./mailpit.js";
import { checkLoaders, clearChecks, showAuthBadge } from "./checks.js";

const PAGE_SIZE = 50;
const RAW_LIMIT = 2 * 1024 * 1024;

const $ = (id) => document.getElementById(id);

const state = {
  query: "",
  mailbox: "",
  start: 0,
  total: 0, // messages in the store (all mailboxes)
  unread: 0,
  count: 0, // messages matching the current query / mailbox
  messages: [], // summaries of the page shown, newest first
  selected: null, // ID of the message shown, or null
  message: null, // its detail
  tab: "html",
  remote: new Set(), // IDs whose remote content the user asked for
};

// ---------------------------------------------------------------- helpers

/** An element with text (never markup) and attributes. */
function el(tag, { text, cls, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

function apiPath(path, params = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) search.set(name, value);
  }
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}

class APIError extends Error {}

async function api(path, { method = "GET", body, as = method === "GET" ? "json" : "text" } = {}) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText}`;
    try {
      const text = (await response.text()).trim();
      if (text) {
        try {
          reason = JSON.parse(text).Error || text;
        } catch {
          reason = text;
        }
      }
    } catch {
      // keep the status line
    }
    throw new APIError(reason.split("\n")[0]);
  }
  if (as === "json") return response.json();
  if (as === "text") return response.text();
  if (as === "bytes") return new Uint8Array(await response.arrayBuffer());
  if (as === "blob") return response.blob();
  return response;
}

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = error instanceof Error ? error.message : String(error);
}

function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function formatTime(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  if (date.toDateString() === now.toDateString()) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  const sameYear = date.getFullYear() === now.getFullYear();
  return date.toLocaleDateString([], {
    day: "numeric",
    month: "short",
    year: sameYear ? undefined : "numeric",
  });
}

function formatAddress(address) {
  if (!address) return "";
  const mail = address.Address || "";
  return address.Name ? `${address.Name} <${mail}>` : mail;
}

function shortAddress(address) {
  if (!address) return "";
  return address.Name || address.Address || "";
}

function addressList(list) {
  return (list || []).map(formatAddress).join(", ");
}

// ---------------------------------------------------------------- the URL

/** Reads the query, mailbox, page and message shown from the location. */
function readLocation() {
  const params = new URLSearchParams(location.search);
  state.query = params.get("q") || "";
  state.mailbox = params.get("mailbox") || "";
  state.start = Math.max(0, parseInt(params.get("start") || "0", 10) || 0);
  state.selected = params.get("id") || null;
  $("query").value = state.query;
  $("mailbox").value = state.mailbox;
}

/** Puts the state into the location: a new history entry unless replace. */
function writeLocation(replace = false) {
  const params = new URLSearchParams();
  if (state.query) params.set("q", state.query);
  if (state.mailbox) params.set("mailbox", state.mailbox);
  if (state.start) params.set("start", String(state.start));
  if (state.selected) params.set("id", state.selected);
  const qs = params.toString();
  const url = qs ? `?${qs}` : location.pathname;
  if (url === location.search || (!qs && !location.search)) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

// ---------------------------------------------------------------- the list

let listRequest = 0;
// Summaries the event stream announced while a list request was out (null
// when none is): its answer may have been made before they arrived.
let arrivedDuring = null;

/** Loads the page of messages the state asks for, and shows it. */
async function loadList() {
  const request = ++listRequest;
  arrivedDuring = [];
  const params = { start: state.start, limit: PAGE_SIZE, mailbox: state.mailbox };
  const path = state.query
    ? apiPath("api/v1/search", { query: state.query, ...params })
    : apiPath("api/v1/messages", params);
  let page;
  try {
    page = await api(path);
  } catch (error) {
    if (request !== listRequest) return;
    arrivedDuring = null;
    state.messages = [];
    state.count = 0;
    renderList();
    showError(error);
    return;
  }
  if (request !== listRequest) return;
  const arrived = arrivedDuring || [];
  arrivedDuring = null;
  showError(null);
  mailpit.pageLoaded(page, state.query);
  state.messages = page.messages || [];
  state.count = page.messages_count ?? state.messages.length;
  state.total = page.total ?? state.total;
  state.unread = page.unread ?? state.unread;
  const missed = arrived.filter(
    (m) => belongsOnTop(m) && !state.messages.some((shown) => shown.ID === m.ID),
  );
  if (missed.length) {
    state.messages = missed.reverse().concat(state.messages).slice(0, PAGE_SIZE);
    state.count += missed.length;
  }
  if (state.start && state.start >= state.count) {
    state.start = Math.max(0, Math.floor((state.count - 1) / PAGE_SIZE) * PAGE_SIZE);
    writeLocation(true);
    return loadList();
  }
  renderList();
}

let reloadTimer = null;

/** Reloads the list soon, once, however many events ask for it. */
function reloadSoon() {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    loadList();
  }, 150);
}

function rowFor(message) {
  const unread = !message.Read;
  const row = el("li", {
    cls: `row${unread ? " unread" : ""}${message.ID === state.selected ? " selected" : ""}`,
    attrs: { "data-id": message.ID, tabindex: "-1" },
  });
  const recipients = (message.To || []).concat(message.Cc || []);
  const from = el("span", { cls: "from", text: shortAddress(message.From) || "(no sender)" });
  from.title = formatAddress(message.From);
  const to = el("span", {
    cls: "to",
    text: recipients.length ? `to ${recipients.map(shortAddress).join(", ")}` : "",
  });
  to.title = addressList(recipients);
  const marks = el("span", { cls: "marks" });
  if (unread) marks.append(el("span", { cls: "unread-mark", text: "●", attrs: { title: "unread" } }));
  if (message.Attachments) {
    marks.append(
      el("span", {
        cls: "attachment-mark",
        attrs: { title: "has attachments", "aria-label": "has attachments" },
      }),
    );
  }
  const time = el("time", { cls: "time", text: formatTime(message.Created) });
  if (message.Created) time.setAttribute("datetime", message.Created);
  time.title = message.Created ? new Date(message.Created).toLocaleString() : "";
  row.append(
    el("div", { cls: "line1" }, marks, from, to, time),
    el(
      "div",
      { cls: "line2" },
      el("span", { cls: "subject", text: message.Subject || "(no subject)" }),
      el("span", { cls: "snippet", text: message.Snippet || "" }),
      el("span", { cls: "size", text: formatSize(message.Size) }),
    ),
  );
  if (!state.mailbox && message.Mailbox) {
    row.querySelector(".line2").append(el("span", { cls: "mailbox-tag", text: message.Mailbox }));
  }
  mailpit.decorateRow(row, message);
  return row;
}

function renderList() {
  const list = $("list");
  list.replaceChildren(...state.messages.map(rowFor));
  $("empty").hidden = state.messages.length > 0;
  $("empty").textContent = state.query ? "No messages match." : "No messages.";
  renderCounts();
}

/** "1 message", "2 messages". */
function messages(n) {
  return `${n} ${n === 1 ? "message" : "messages"}`;
}

function renderCounts() {
  const results = `${state.count} ${state.count === 1 ? "result" : "results"}`;
  $("count").textContent = state.query ? results : messages(state.count);
  const first = state.count ? state.start + 1 : 0;
  const last = Math.min(state.start + state.messages.length, state.count);
  $("range").textContent = state.count > PAGE_SIZE ? `${first}–${last}` : "";
  $("prev-page").disabled = state.start === 0;
  $("next-page").disabled = state.start + PAGE_SIZE >= state.count;
  $("delete-all").disabled = state.count === 0;
  $("delete-all").textContent = state.query ? `Delete ${state.count} matching` : "Delete all";
  document.title = state.unread ? `(${state.unread}) netlab inbox` : "netlab inbox";
}

function markRow(id, read) {
  const message = state.messages.find((m) => m.ID === id);
  if (message) message.Read = read;
  const row = $("list").querySelector(`[data-id="${CSS.escape(id)}"]`);
  if (row && message) row.replaceWith(rowFor(message));
  if (state.message && state.message.ID === id) {
    state.message.Read = read;
    $("toggle-read").textContent = read ? "Mark unread" : "Mark read";
  }
}

// ---------------------------------------------------------------- events

/** Whether a new message certainly belongs at the top of the page shown. */
function belongsOnTop(summary) {
  return !state.query && state.start === 0 && (!state.mailbox || summary.Mailbox === state.mailbox);
}

const events = {
  new(summary) {
    mailpit.arrived(summary);
    arrivedDuring?.push(summary);
    if (state.messages.some((m) => m.ID === summary.ID)) return;
    if (belongsOnTop(summary)) {
      state.messages.unshift(summary);
      state.count += 1;
      const list = $("list");
      list.prepend(rowFor(summary));
      if (state.messages.length > PAGE_SIZE) {
        state.messages.pop();
        list.lastElementChild.remove();
      }
      $("empty").hidden = true;
      renderCounts();
    } else if (!state.mailbox || summary.Mailbox === state.mailbox) {
      reloadSoon(); // the query decides whether it shows, or the page moved
    }
  },
  update({ ID, Read, Tags }) {
    const message = state.messages.find((m) => m.ID === ID);
    if (message && Array.isArray(Tags)) message.Tags = Tags;
    markRow(ID, Read);
    mailpit.updated({ ID, Tags });
  },
  delete({ IDs }) {
    const gone = new Set(IDs);
    if (arrivedDuring) arrivedDuring = arrivedDuring.filter((m) => !gone.has(m.ID));
    const before = state.messages.length;
    state.messages = state.messages.filter((m) => !gone.has(m.ID));
    if (state.messages.length !== before) {
      for (const id of gone) $("list").querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
      state.count = Math.max(0, state.count - (before - state.messages.length));
      renderCounts();
      reloadSoon(); // fill the page from below
    }
    if (state.selected && gone.has(state.selected)) closeMessage(true);
  },
  stats({ Total, Unread }) {
    state.total = Total;
    state.unread = Unread;
    renderCounts();
  },
};

let source = null;

/** Opens the event stream; the promise settles once it is first open. */
function connectEvents() {
  source = new EventSource("api/v1/events");
  let opened = false;
  let firstOpen;
  const open = new Promise((resolve) => {
    firstOpen = resolve;
  });
  source.addEventListener("open", () => {
    $("live").textContent = "live";
    $("live").classList.add("on");
    // Back after a drop, or opened after the list was asked for: catch up.
    if (opened || listRequest > 0) loadList();
    opened = true;
    firstOpen();
  });
  source.addEventListener("error", () => {
    $("live").textContent = "offline";
    $("live").classList.remove("on");
  });
  for (const [name, handle] of Object.entries(events)) {
    source.addEventListener(name, (event) => {
      try {
        handle(JSON.parse(event.data));
      } catch (error) {
        console.warn("bad event", name, error);
      }
    });
  }
  return open;
}

// ---------------------------------------------------------------- a message

let messageRequest = 0;

async function openMessage(id, { push = true } = {}) {
  const request = ++messageRequest;
  state.selected = id;
  if (push) writeLocation();
  for (const row of $("list").querySelectorAll(".row.selected")) row.classList.remove("selected");
  const row = $("list").querySelector(`[data-id="${CSS.escape(id)}"]`);
  row?.classList.add("selected");
  row?.scrollIntoView({ block: "nearest" });
  document.body.classList.add("viewing");
  $("view-pane").hidden = false;
  try {
    const message = await api(`api/v1/message/${encodeURIComponent(id)}`);
    if (request !== messageRequest) return;
    // Reading the message marks it read in the store; show that at once.
    message.Read = true;
    state.message = message;
    markRow(id, true);
    renderMessage();
  } catch (error) {
    if (request !== messageRequest) return;
    state.message = null;
    clearMessage();
    $("subject").textContent = error.message;
  }
}

function closeMessage(replace = false) {
  messageRequest++;
  state.selected = null;
  state.message = null;
  writeLocation(replace);
  document.body.classList.remove("viewing");
  $("view-pane").hidden = true;
  clearMessage();
  for (const row of $("list").querySelectorAll(".row.selected")) row.classList.remove("selected");
}

function clearMessage() {
  mailpit.clearMessage();
  $("html-frame").removeAttribute("src");
  for (const id of ["subject", "addresses", "text", "headers", "raw", "envelope", "attachments", "preview"]) {
    $(id).replaceChildren();
  }
  clearChecks();
}

function renderMessage() {
  const message = state.message;
  clearMessage();
  $("subject").textContent = message.Subject || "(no subject)";
  const addresses = $("addresses");
  const rows = [
    ["From", formatAddress(message.From)],
    ["To", addressList(message.To)],
    ["Cc", addressList(message.Cc)],
    ["Bcc", addressList(message.Bcc)],
    ["Reply-To", addressList(message.ReplyTo)],
    ["Date", message.Date ? new Date(message.Date).toLocaleString() : ""],
    ["Mailbox", message.Mailbox || ""],
  ];
  for (const [name, value] of rows) {
    if (value) addresses.append(el("dt", { text: name }), el("dd", { text: value }));
  }
  mailpit.showMessage(message);
  $("toggle-read").textContent = message.Read ? "Mark unread" : "Mark read";
  $("download").setAttribute("href", `api/v1/message/${encodeURIComponent(message.ID)}/raw`);
  $("download").setAttribute("download", `${message.ID}.eml`);
  const files = (message.Attachments || []).concat(message.Inline || []);
  $("attachment-count").textContent = files.length ? `(${files.length})` : "";
  const hasHTML = Boolean(message.HTML);
  $("tabs").querySelector('[data-tab="html"]').hidden = !hasHTML;
  // The tab last chosen, unless it is HTML and this message has none.
  selectTab(state.tab === "html" && !hasHTML ? "text" : state.tab, false);
  showAuthBadge(message, isShown);
}

const loaders = {
  html(message) {
    const remote = state.remote.has(message.ID);
    const base = `view/${encodeURIComponent(message.ID)}.html`;
    $("html-frame").setAttribute("src", remote ? `${base}?remote=1` : base);
    $("remote-note").textContent = remote
      ? "Remote content is loaded for this message."
      : "Remote content is blocked.";
    $("load-remote").hidden = remote;
  },
  text(message) {
    $("text").textContent = message.Text || "(this message has no text part)";
  },
  async headers(message) {
    const raw = await rawOf(message);
    if (state.message !== message) return; // another message is shown now
    const body = $("headers");
    body.replaceChildren(
      ...parseHeaders(raw).map(([name, value]) =>
        el("tr", {}, el("th", { text: name, attrs: { scope: "row" } }), el("td", { text: value })),
      ),
    );
  },
  async raw(message) {
    const raw = await rawOf(message);
    if (state.message !== message) return; // another message is shown now
    const pre = $("raw");
    if (raw.length > RAW_LIMIT) {
      pre.textContent = `${raw.slice(0, RAW_LIMIT)}\n… (${formatSize(message.Size)}: download the .eml for the rest)`;
    } else {
      pre.textContent = raw;
    }
  },
  envelope(message) {
    const envelope = message.Envelope;
    const list = $("envelope");
    if (!envelope) {
      list.append(el("dt", { text: "Envelope" }), el("dd", { text: "not recorded for this message" }));
      return;
    }
    const rows = [
      ["MAIL FROM", envelope.MailFrom === "" ? "<> (null sender)" : envelope.MailFrom],
      ["RCPT TO", (envelope.RcptTo || []).join(", ")],
      ["Client", envelope.Client],
      ["TLS", envelope.TLS ? "yes" : "no"],
      ["AUTH", envelope.AuthUser || "none"],
      ["Received", envelope.Received ? new Date(receivedTime(envelope.Received)).toLocaleString() : ""],
    ];
    for (const [name, value] of rows) list.append(el("dt", { text: name }), el("dd", { text: value ?? "" }));
  },
  attachments(message) {
    const list = $("attachments");
    const files = (message.Attachments || []).concat(message.Inline || []);
    if (!files.length) {
      list.append(el("li", { cls: "none", text: "No attachments." }));
      return;
    }
    for (const part of files) {
      const url = `api/v1/message/${encodeURIComponent(message.ID)}/part/${encodeURIComponent(part.PartID)}`;
      const name = part.FileName || `part-${part.PartID}`;
      const link = el("a", { cls: "button", text: "Download" });
      link.setAttribute("href", url);
      link.setAttribute("download", name);
      const item = el(
        "li",
        { cls: "attachment" },
        el("span", { cls: "file-name", text: name }),
        el("span", { cls: "file-type", text: part.ContentType || "" }),
        el("span", { cls: "file-size", text: formatSize(part.Size) }),
        link,
      );
      if (previewable(part.ContentType)) {
        const button = el("button", { text: "Preview", attrs: { type: "button" } });
        button.addEventListener("click", () => preview(url, part));
        item.append(button);
      }
      list.append(item);
    }
  },
};

const isShown = (message) => state.message === message;
Object.assign(loaders, checkLoaders(isShown));

/** Received as seconds since the epoch (our envelope) or as a date string. */
function receivedTime(value) {
  return typeof value === "number" ? value * 1000 : value;
}

function previewable(type) {
  const t = (type || "").toLowerCase();
  return t.startsWith("image/") || t === "application/pdf";
}

let previewURL = null;

async function preview(url, part) {
  const box = $("preview");
  box.replaceChildren();
  if (previewURL) URL.revokeObjectURL(previewURL);
  try {
    // A blob of the stated type: images in <img>, PDFs in the browser's viewer.
    // Neither can run script in the page.
    const type = part.ContentType.toLowerCase();
    const blob = new Blob([await api(url, { as: "blob" })], { type });
    previewURL = URL.createObjectURL(blob);
    const name = part.FileName || part.PartID;
    if (type.startsWith("image/")) {
      box.append(el("img", { attrs: { src: previewURL, alt: name } }));
    } else {
      box.append(el("iframe", { cls: "pdf", attrs: { src: previewURL, title: name } }));
    }
  } catch (error) {
    box.append(el("p", { cls: "error", text: error.message }));
  }
}

let rawCache = { id: null, text: "" };

async function rawOf(message) {
  if (rawCache.id !== message.ID) {
    const bytes = await api(`api/v1/message/${encodeURIComponent(message.ID)}/raw`, { as: "bytes" });
    rawCache = { id: message.ID, text: new TextDecoder("utf-8").decode(bytes) };
  }
  return rawCache.text;
}

async function selectTab(tab, chosen = true) {
  if (chosen) state.tab = tab;
  for (const button of $("tabs").querySelectorAll("[data-tab]")) {
    const on = button.dataset.tab === tab;
    button.setAttribute("aria-selected", String(on));
    button.classList.toggle("active", on);
  }
  for (const panel of document.querySelectorAll("[data-panel]")) {
    panel.hidden = panel.dataset.panel !== tab;
  }
  const message = state.message;
  if (!message) return;
  try {
    await loaders[tab](message);
  } catch (error) {
    showError(error);
  }
}

// ---------------------------------------------------------------- actions

async function run(action) {
  try {
    showError(null);
    await action();
  } catch (error) {
    showError(error);
  }
}

function neighbour(step) {
  const index = state.messages.findIndex((m) => m.ID === state.selected);
  return state.messages[index + step] || null;
}

async function deleteSelected() {
  const id = state.selected;
  if (!id) return;
  const next = neighbour(1) || neighbour(-1);
  await api("api/v1/messages", { method: "DELETE", body: { IDs: [id] } });
  events.delete({ IDs: [id] });
  if (next) openMessage(next.ID, { push: false });
  writeLocation(true);
}

async function toggleRead() {
  const message = state.message;
  if (!message) return;
  const read = !message.Read;
  await api("api/v1/messages", { method: "PUT", body: { IDs: [message.ID], Read: read } });
  markRow(message.ID, read);
}

async function deleteAll() {
  const n = messages(state.count);
  const what = state.query
    ? `Delete ${n} matching “${state.query}”?`
    : state.mailbox
      ? `Delete ${n} of ${state.mailbox}?`
      : `Delete all ${n}?`;
  if (!confirm(what)) return;
  if (state.query || state.mailbox) {
    // query= may be empty (everything in the mailbox), but must be there.
    const path = `api/v1/search?query=${encodeURIComponent(state.query)}`;
    await api(state.mailbox ? `${path}&mailbox=${encodeURIComponent(state.mailbox)}` : path, {
      method: "DELETE",
    });
  } else {
    await api("api/v1/messages", { method: "DELETE", body: {} });
  }
  closeMessage(true);
  state.start = 0;
  writeLocation(true);
  await loadList();
}

function step(direction) {
  const messages = state.messages;
  if (!messages.length) return;
  const index = messages.findIndex((m) => m.ID === state.selected);
  const next = index === -1 ? 0 : index + direction;
  if (next >= 0 && next < messages.length) openMessage(messages[next].ID, { push: false }).then(() => writeLocation(true));
  else if (next >= messages.length && state.start + PAGE_SIZE < state.count) turnPage(1, "first");
  else if (next < 0 && state.start > 0) turnPage(-1, "last");
}

async function turnPage(direction, open) {
  state.start = Math.max(0, state.start + direction * PAGE_SIZE);
  if (open) state.selected = null;
  writeLocation();
  await loadList();
  if (open && state.messages.length) {
    const message = open === "first" ? state.messages[0] : state.messages[state.messages.length - 1];
    openMessage(message.ID, { push: false });
  }
}

function search(query) {
  state.query = query.trim();
  state.start = 0;
  if (state.selected) closeMessage(true);
  writeLocation();
  loadList();
}

async function loadMailboxes() {
  try {
    const answer = await api("api/v1/mailboxes");
    const names = (Array.isArray(answer) ? answer : answer.mailboxes || answer.Mailboxes || []).map((m) =>
      typeof m === "string" ? m : m.Address || m.Mailbox || m.Name,
    );
    const select = $("mailbox");
    select.replaceChildren(el("option", { text: "All mailboxes", attrs: { value: "" } }));
    for (const name of names.filter(Boolean)) select.append(el("option", { text: name, attrs: { value: name } }));
    if (state.mailbox && !names.includes(state.mailbox)) {
      select.append(el("option", { text: state.mailbox, attrs: { value: state.mailbox } }));
    }
    select.value = state.mailbox;
    select.closest("label").hidden = names.length < 2 && !state.mailbox;
  } catch {
    $("mailbox").closest("label").hidden = true;
  }
}

// ---------------------------------------------------------------- wiring

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  const typing = target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement;
  if (typing) {
    if (event.key === "Escape") target.blur();
    return;
  }
  const keys = {
    j: () => step(1),
    ArrowDown: () => step(1),
    k: () => step(-1),
    ArrowUp: () => step(-1),
    n: () => !$("next-page").disabled && turnPage(1),
    p: () => !$("prev-page").disabled && turnPage(-1),
    u: () => run(toggleRead),
    Delete: () => run(deleteSelected),
    "#": () => run(deleteSelected),
    "/": () => $("query").focus(),
    "?": () => $("shortcuts").togglePopover(),
  };
  if (event.key === "Escape") {
    // Not prevented: Escape also closes an open popover (help, shortcuts).
    if (state.selected && !document.querySelector(":popover-open")) closeMessage();
    return;
  }
  const handle = keys[event.key];
  if (handle) {
    event.preventDefault();
    handle();
  }
}

function wire() {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    search($("query").value);
  });
  $("query").addEventListener("search", () => {
    if ($("query").value === "" && state.query) search("");
  });
  $("mailbox").addEventListener("change", () => {
    state.mailbox = $("mailbox").value;
    state.start = 0;
    if (state.selected) closeMessage(true);
    writeLocation();
    loadList();
  });
  $("list").addEventListener("click", (event) => {
    const row = event.target.closest(".row");
    if (row) openMessage(row.dataset.id);
  });
  $("prev-page").addEventListener("click", () => turnPage(-1));
  $("next-page").addEventListener("click", () => turnPage(1));
  $("delete-all").addEventListener("click", () => run(deleteAll));
  $("back").addEventListener("click", () => closeMessage());
  $("delete").addEventListener("click", () => run(deleteSelected));
  $("toggle-read").addEventListener("click", () => run(toggleRead));
  $("older").addEventListener("click", () => step(1));
  $("newer").addEventListener("click", () => step(-1));
  $("load-remote").addEventListener("click", () => {
    if (!state.message) return;
    state.remote.add(state.message.ID);
    selectTab("html");
  });
  $("tabs").addEventListener("click", (event) => {
    const button = event.target.closest("[data-tab]");
    if (button) selectTab(button.dataset.tab);
  });
  $("home").addEventListener("click", (event) => {
    event.preventDefault();
    state.query = "";
    state.mailbox = "";
    $("query").value = "";
    $("mailbox").value = "";
    state.start = 0;
    if (state.selected) closeMessage(true);
    writeLocation();
    loadList();
  });
  window.addEventListener("popstate", async () => {
    const before = { query: state.query, mailbox: state.mailbox, start: state.start };
    readLocation();
    if (before.query !== state.query || before.mailbox !== state.mailbox || before.start !== state.start) {
      await loadList();
    }
    if (state.selected) openMessage(state.selected, { push: false });
    else closeMessage(true);
  });
  document.addEventListener("keydown", onKey);
}

async function main() {
  wire();
  const settled = mailpit.init({
    search(query) {
      $("query").value = query;
      search(query);
    },
    reload: reloadSoon,
    open: (id) => openMessage(id),
  });
  readLocation();
  // The list is asked for once the stream is open (or has had a second to
  // open): then every message is in the answer, or announced after it.
  const open = connectEvents();
  await Promise.race([open, new Promise((resolve) => setTimeout(resolve, 1000))]);
  // The list first: the mailbox menu can wait for it.
  const listed = loadList();
  listed.then(loadMailboxes);
  await listed;
  if (state.selected) openMessage(state.selected, { push: false });
  await settled;
  document.body.dataset.ready = "true";
}

main();
